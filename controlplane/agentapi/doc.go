// Package agentapi holds the generated wire types and gRPC service of the agent
// RPC (agent.proto): the only control-plane package the agent imports.
//
// Regenerate with `make proto` after editing agent.proto.
package agentapi
