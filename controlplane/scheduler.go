package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
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
// connected agent whose schema has every table the job needs. An agent runs
// one job at a time.
func (s *Server) schedule(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var idle []*session
	for _, ss := range s.sessions {
		if !ss.closed && ss.job == "" {
			idle = append(idle, ss)
		}
	}
	if len(idle) == 0 {
		return
	}
	slices.SortFunc(idle, func(a, b *session) int {
		switch {
		case a.agentID < b.agentID:
			return -1
		case a.agentID > b.agentID:
			return 1
		}
		return 0
	})
	jobs, err := s.store.queuedJobs(ctx, scheduleBatch)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "scheduler: listing queued jobs failed", slog.String("error", err.Error()))
		return
	}
	for _, j := range jobs {
		if len(idle) == 0 {
			return
		}
		i := slices.IndexFunc(idle, func(ss *session) bool { return ss.hasTables(j.Tables) })
		if i < 0 {
			s.log.LogAttrs(ctx, slog.LevelDebug, "scheduler: no idle agent has the job's tables", slog.String("job_id", j.ID))
			continue
		}
		ss := idle[i]
		ok, err := s.store.assignJob(ctx, j.ID, ss.agentID, time.Now())
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "scheduler: assigning job failed", slog.String("job_id", j.ID), slog.String("error", err.Error()))
			return
		}
		if !ok {
			continue // cancelled meanwhile
		}
		ss.job = j.ID
		s.metrics.transitions.Inc(string(api.StateQueued), string(api.StateAssigned))
		idle = slices.Delete(idle, i, i+1)
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

// optionsJSON encodes a job's options for its assignment.
func optionsJSON(o link.JobOptions) string {
	b, err := json.Marshal(o)
	if err != nil {
		return "{}" // a struct of numbers and times always encodes
	}
	return string(b)
}
