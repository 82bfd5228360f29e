package controlplane

import (
	"github.com/ferry-ai/ferry/controlplane/agentapi"
	"github.com/ferry-ai/ferry/controlplane/api"
)

// transitions lists, for each state, the states an agent's job event may move
// a job to. A job moves queued -> assigned only by the scheduler, and
// queued -> cancelled only by the user API; agents never report queued.
// Staying in the same state is allowed for every state an agent reports: it
// carries a detail (one TableStats event per table while reading, a purge
// report after failing) without changing the state.
var transitions = map[api.JobState][]api.JobState{
	api.StateAssigned:  {api.StateAssigned, api.StateReading, api.StateFailed, api.StateCancelled},
	api.StateReading:   {api.StateReading, api.StateTraining, api.StateFailed, api.StateCancelled},
	api.StateTraining:  {api.StateTraining, api.StateWriting, api.StateFailed, api.StateCancelled},
	api.StateWriting:   {api.StateWriting, api.StateSucceeded, api.StateFailed, api.StateCancelled},
	api.StateSucceeded: {api.StateSucceeded},
	api.StateFailed:    {api.StateFailed},
	api.StateCancelled: {api.StateCancelled},
}

// transitionAllowed reports whether an agent's event may move a job from one
// state to another.
func transitionAllowed(from, to api.JobState) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// stateFromProto maps a wire state an agent may report to an API state; it
// reports false for UNSPECIFIED, QUEUED and unknown values.
func stateFromProto(s agentapi.JobState) (api.JobState, bool) {
	switch s {
	case agentapi.JobState_JOB_STATE_ASSIGNED:
		return api.StateAssigned, true
	case agentapi.JobState_JOB_STATE_READING:
		return api.StateReading, true
	case agentapi.JobState_JOB_STATE_TRAINING:
		return api.StateTraining, true
	case agentapi.JobState_JOB_STATE_WRITING:
		return api.StateWriting, true
	case agentapi.JobState_JOB_STATE_SUCCEEDED:
		return api.StateSucceeded, true
	case agentapi.JobState_JOB_STATE_FAILED:
		return api.StateFailed, true
	case agentapi.JobState_JOB_STATE_CANCELLED:
		return api.StateCancelled, true
	}
	return "", false
}
