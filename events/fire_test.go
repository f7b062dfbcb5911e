package events

import (
	"errors"
	"strings"
	"testing"
)

// A field a bounded reader cut is refused first, naming the field and its
// size, whatever else is in the entry: in a fire, its version field, and
// an event.
func TestDecodeRefusesCutFields(t *testing.T) {
	cut := CutValue(104857600)
	for name, decode := range map[string]func() error{
		"fire payload": func() error {
			_, err := DecodeFire("1-1", map[string]string{"task": "t", "payload": cut})
			return err
		},
		"fire version": func() error {
			_, err := DecodeFire("1-1", map[string]string{"v": cut, "task": "t"})
			return err
		},
		"event error": func() error {
			_, err := DecodeEvent("1-1", map[string]string{"v": "1", "type": "failed", "task": "t", "error": cut})
			return err
		},
	} {
		err := decode()
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "104857600 bytes") {
			t.Errorf("%s: %v; want a DecodeError naming 104857600 bytes", name, err)
		}
	}
	if n, ok := CutSize(cut); !ok || n != 104857600 {
		t.Errorf("CutSize(CutValue(104857600)) = %d, %v", n, ok)
	}
	if _, ok := CutSize("104857600"); ok {
		t.Error("a plain number read as a cut marker")
	}
}
