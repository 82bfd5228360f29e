package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
	"github.com/ferry-ai/ferry/internal/link"
)

// schedulePeriod is how often the scheduler looks for work without a wake-up.
const schedulePeriod = 5 * time.Second

// scheduleBatch bounds the queued jobs one scheduling pass considers.
const scheduleBatch = 100

// wake asks the scheduler for a pass soon.
func (s *Server) wake() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// scheduleLoop assigns queued jobs until ctx is done.
func (s *Server) scheduleLoop(ctx context.Context) {
	t := time.NewTicker(schedulePeriod)
	defer t.Stop()
	for {
		s.schedule(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
		case <-t.C:
		}
	}
}

// schedule runs one pass: each queued job, oldest first, goes to an idle
// connected agent of the job's tenant whose schema has every table the job
// needs; an agent runs one job at a time, and the agents take turns. The
// server's lock is held only to read and claim sessions, never across the
// database: a thousand agents heartbeating and connecting do not queue
// behind a pass.
func (s *Server) schedule(ctx context.Context) {
	s.mu.Lock()
	var idle []*session
	for _, ss := range s.sessions {
		if !ss.closed && ss.job == "" {
			idle = append(idle, ss)
		}
	}
	start := s.nextAgent
	s.mu.Unlock()
	if len(idle) == 0 {
		return
	}
	// Agent ID order, starting after the agent that got the last job, so
	// that equivalent agents share the work.
	slices.SortFunc(idle, func(a, b *session) int { return strings.Compare(a.agentID, b.agentID) })
	if k := slices.IndexFunc(idle, func(ss *session) bool { return ss.agentID > start }); k > 0 {
		idle = append(idle[k:], idle[:k]...)
	}
	jobs, err := s.store.queuedJobs(ctx, scheduleBatch)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "scheduler: listing queued jobs failed", slog.String("error", err.Error()))
		return
	}
	for _, j := range jobs {
		if len(idle) == 0 {
			return
		}
		i := slices.IndexFunc(idle, func(ss *session) bool { return ss.tenant == j.Tenant && ss.hasTables(j.Tables) })
		if i < 0 {
			s.log.LogAttrs(ctx, slog.LevelDebug, "scheduler: no idle agent of the job's tenant has its tables", slog.String("job_id", j.ID))
			continue
		}
		ss := idle[i]
		idle = slices.Delete(idle, i, i+1)
		// Claim the session, then record the assignment.
		s.mu.Lock()
		claimed := !ss.closed && ss.job == ""
		if claimed {
			ss.job = j.ID
		}
		s.mu.Unlock()
		if !claimed {
			continue
		}
		ok, err := s.store.assignJob(ctx, j.ID, ss.agentID, time.Now())
		if err != nil || !ok {
			s.mu.Lock()
			if ss.job == j.ID {
				ss.job = ""
			}
			s.mu.Unlock()
			if err != nil {
				s.log.LogAttrs(ctx, slog.LevelError, "scheduler: assigning job failed", slog.String("job_id", j.ID), slog.String("error", err.Error()))
				return
			}
			continue // cancelled meanwhile
		}
		s.mu.Lock()
		gone := ss.closed
		if !gone {
			s.nextAgent = ss.agentID
		}
		s.mu.Unlock()
		if gone {
			// The session ended between the claim and the assignment: the
			// job goes back to the queue as any job of a disconnected agent
			// does.
			s.requeue(ctx, j.ID, "agent", time.Now(), func(from api.JobState) string {
				return fmt.Sprintf("agent %q disconnected while the job was %s", ss.agentID, from)
			})
			continue
		}
		s.metrics.transitions.Inc(string(api.StateQueued), string(api.StateAssigned))
		s.send(ss, &agentapi.ControlMessage{Msg: &agentapi.ControlMessage_Assignment{Assignment: &agentapi.JobAssignment{
			JobId:            j.ID,
			Query:            j.Query,
			OutputTable:      j.OutputTable,
			Tables:           j.Tables,
			CreatedUnixNanos: j.CreatedAt.UnixNano(),
			OptionsJson:      optionsJSON(j.Options),
		}}})
		s.log.LogAttrs(ctx, slog.LevelInfo, "job assigned", slog.String("job_id", j.ID), slog.String("agent", ss.agentID))
	}
}

// seenLoop writes the agents' last heartbeats to the metadata database
// once per heartbeat interval, in one transaction, until ctx is done.
func (s *Server) seenLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	written := map[*session]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		batch := map[string]int64{}
		live := map[*session]bool{}
		for _, ss := range s.sessions {
			live[ss] = true
			if n := ss.seen.Load(); n > written[ss] {
				batch[ss.agentID] = n
				written[ss] = n
			}
		}
		s.mu.Unlock()
		for ss := range written {
			if !live[ss] {
				delete(written, ss)
			}
		}
		if err := s.store.agentsSeen(ctx, batch); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "recording heartbeats failed", slog.Int("agents", len(batch)), slog.String("error", err.Error()))
		}
	}
}

// optionsJSON encodes a job's options for its assignment.
func optionsJSON(o link.JobOptions) string {
	b, err := json.Marshal(o)
	if err != nil {
		return "{}" // a struct of numbers and times always encodes
	}
	return string(b)
}
