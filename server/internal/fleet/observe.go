package fleet

import "time"

// Observer is told of the service's work as each piece ends: how long a
// report took to be stored, an import to be read in and matched, a
// publication to be handed to the broker. The server's metrics
// (server/internal/metrics) implement it; Observe must return quickly and
// must not call back into the Service.
type Observer interface {
	Observe(Event)
}

// Op names what an Event measured.
type Op string

// Ops.
const (
	// OpReport: a device's report, from the call to Report to the
	// store's commit (or refusal).
	OpReport Op = "report"
	// OpImport: an import, from the call to Import to the store's commit
	// and the index swap (parsing the source is the caller's and not
	// counted).
	OpImport Op = "import"
	// OpPublish: one feed notice or command signed and handed to the
	// broker, which fans it out to every subscriber before Publish
	// returns (the embedded one) or once its broker acknowledged it (an
	// external one, QoS 1).
	OpPublish Op = "publish"
	// OpWebhook: one attempt to deliver a webhook notification, from the
	// request to the answer (or the attempt's end).
	OpWebhook Op = "webhook"
)

// Event is one finished operation.
type Event struct {
	Op   Op
	Took time.Duration
	// Err is what the operation failed with; nil when it succeeded.
	Err error
	// Duplicate marks a report whose id was already applied (OpReport).
	Duplicate bool
	// Read and Changed are the advisories read and the ids changed
	// (OpImport).
	Read, Changed int
	// Kind is "feed" or "command" (OpPublish), or the event type
	// (OpWebhook).
	Kind string
	// Result is "delivered", "retrying" (failed, another attempt will
	// be made) or "failed" (the last attempt failed) (OpWebhook).
	Result string
}

// observe hands e to the Observer, if any.
func (s *Service) observe(e Event) {
	if s.opts.Observer != nil {
		s.opts.Observer.Observe(e)
	}
}
