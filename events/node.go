package events

import (
	"fmt"
	"os"

	"github.com/google/uuid"
)

// NewNode returns a name for a planner or worker that was given none:
// host-pid-random, unique among live processes, and readable in events.
func NewNode() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
}
