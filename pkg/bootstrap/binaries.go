package bootstrap

import "github.com/dk8s/dk8s/pkg/host"

// binaryEvents tells a start's or a join's listener of a host binary
// fetched for the node: a line when its download begins, on each retry or
// mirror passed over, and when it is in place. The bytes as they come are for
// 'dk8s pull' to show.
func binaryEvents(emit func(Event)) func(host.BinaryEvent) {
	return func(e host.BinaryEvent) {
		switch e.Phase {
		case host.BinaryFetching:
			emit(Event{Step: "preflight", Component: e.Name, Message: e.String()})
		case host.BinaryRetry, host.BinaryFallback:
			emit(Event{Step: "preflight", Component: e.Name, Message: e.String(), Warning: true})
		case host.BinaryDone:
			emit(Event{Step: "preflight", Component: e.Name, Message: e.String(), Done: true})
		}
	}
}
