package events

import "runtime/debug"

// Module is taskino's module path.
const Module = "github.com/taskino/taskino"

// Build is the version of taskino this program was built with: the
// module's version (a tag, or "(devel)" for a build from a checkout), and
// for a build of taskino's own binaries the VCS revision, "+dirty" when
// the checkout had changes; "unknown" when the program carries no build
// information. Planners and workers publish it in their registries.
func Build() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if bi.Main.Path != Module {
		for _, d := range bi.Deps {
			if d.Path == Module {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				return d.Version
			}
		}
		return "unknown"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))] + dirty
	}
	return v
}
