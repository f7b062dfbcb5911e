// Package events is taskino's vocabulary: task specs and their triggers as
// data, the fire entries that workers execute, the lifecycle events that
// listeners read, and their encoding to and from Redis stream fields.
//
// It is the leaf of the module: every other package imports it, and it
// imports no sibling (only the standard library, and uuid for NewNode).
// Only this package knows stream field names; the store passes them to
// its scripts as arguments.
//
// # Specs and triggers
//
// A [Spec] names a task and says when it fires ([Trigger]: [Once], [Every] or
// [Cron]), where its fires go (queue, mode) and how late or failed fires are
// handled (misfire, overlap, timeout, attempts). [Spec.Validate] refuses a
// bad spec with a [*SpecError] naming the task, the field and the expected
// form. Parsing a cron expression needs a cron parser, which this package
// does not import: planner.Validate checks that too, and every path that
// stores specs goes through it.
//
// # Encoding
//
// Fires and events are flat string fields, as Redis streams hold them. The
// encoding is versioned (field "v", currently "1") and decoding is strict:
// a missing required field, a field the entry's type does not carry, a
// number that does not parse or text that is not UTF-8 is an error that
// names the field. Encode then Decode gives back the same value; a fuzz
// test holds that.
package events
