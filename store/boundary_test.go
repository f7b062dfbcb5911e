package store_test

import (
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The boundary of package store, as its doc comment states it, checked on
// the source: the compiler keeps store/internal out of reach of programs
// outside the module, and these tests keep the protocol steps from coming
// back onto Store and go-redis from spreading to the other packages.

// protocolSteps are the planning and worker steps that moved to
// store/internal/protocol: none of them may be a method of *Store.
var protocolSteps = []string{
	"Claim", "Plan", "Release", // planning
	"ReadFires", "ReadBroadcast", "Reclaim", "Begin", "FirstTrigger", "Finish", "Heartbeat", "HandBack", "HandBacks", "Route", // worker
	"PromoteRetries", "EnsureGroup", "PruneConsumers", "TrimFires", "TrimEvents", // worker upkeep
	"Leave",                                                                         // the workers registry
	"AppendEvent", "AppendEvents", "AppendStarted", "AppendOutcome", "RetainEvents", // the protocols' own events
}

// operatorMethods is *Store's method set: what an operator or a tool needs,
// each safe to call at any time. A method added to Store must be added here,
// after asking whether it is one of those.
var operatorMethods = []string{
	"Namespace", "Keys", "Time",
	"Apply", "Version", "Specs", "Spec", "State", "States", "LastRun", "LastRuns", "History", "Wake",
	"Trigger", "TriggerOnce", "Pause", "PauseAfterFailures", "Paused", "Resume",
	"ListDead", "ListDeadBack", "DeadLetterByID", "DeleteDead", "Replay",
	"RangeEvents", "RangeFires", "ReadEvents", "ReadEventsBack", "EnsureEventGroup", "ReadEventGroup", "ClaimEvents", "AckEvents", "EventGroupGap",
	"LastEntryID", "StreamReach", "SpecsAndBad", "AppendBackfill", "ForgetBackfill", "Backlog", "PayloadMax", "GroupLag", "QueueOf", "Workers", "Planners", "Held", "CheckACL", "Settings", "SetSettings", "InitEventsMaxLen", "EventGroups", "TakeEventsLost",
}

// packageFuncs are store's exported functions: constructors, two pure
// helpers, and the two accessors of the protocols.
var packageFuncs = []string{
	"New", "NewKeys", "NewBackoff", "NewHealth", "ValidateNamespace", "LessID", "ACLCommands", "Status",
	"PlanningProtocol", "WorkerProtocol", "BoundReplies",
}

// TestStoreKeepsNoProtocolStep type-checks package store from its source
// and checks *Store's method set (promoted methods included, so embedding a
// protocol type would show) and the package's exported functions.
func TestStoreKeepsNoProtocolStep(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	files := parseDir(t, fset, ".")
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	pkg, err := conf.Check("github.com/taskino/taskino/store", fset, files, nil)
	if err != nil {
		t.Fatalf("type-check store: %v", err)
	}
	st, ok := pkg.Scope().Lookup("Store").(*types.TypeName)
	if !ok {
		t.Fatal("no type Store")
	}
	var methods []string
	ms := types.NewMethodSet(types.NewPointer(st.Type()))
	for i := range ms.Len() {
		if m := ms.At(i).Obj(); m.Exported() {
			methods = append(methods, m.Name())
		}
	}
	for _, m := range methods {
		if slices.Contains(protocolSteps, m) {
			t.Errorf("*Store has the protocol step %s: it belongs to store/internal/protocol, handed out by PlanningProtocol or WorkerProtocol", m)
		}
	}
	checkSet(t, "*Store's exported methods", methods, operatorMethods)

	var funcs []string
	for _, name := range pkg.Scope().Names() {
		if f, ok := pkg.Scope().Lookup(name).(*types.Func); ok && f.Exported() {
			funcs = append(funcs, name)
		}
	}
	checkSet(t, "store's exported functions", funcs, packageFuncs)

	// The accessors hand out types no program outside the module can name.
	for _, name := range []string{"PlanningProtocol", "WorkerProtocol"} {
		res := pkg.Scope().Lookup(name).Type().(*types.Signature).Results()
		if res.Len() != 1 {
			t.Errorf("%s returns %d values, want 1", name, res.Len())
			continue
		}
		if s := res.At(0).Type().String(); !strings.HasPrefix(s, "*github.com/taskino/taskino/store/internal/") {
			t.Errorf("%s returns %s, want a type of store/internal", name, s)
		}
	}
}

// TestOnlyStoreSpeaksRedis reads the library packages other than store: the
// only go-redis name they may use is UniversalClient, as the type of a
// constructor's parameter (the client they hand to store.New). Anything
// else they need from Redis, store provides.
func TestOnlyStoreSpeaksRedis(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"../events", "../planner", "../consumer", "../dispatcher", "../listeners"} {
		fset := token.NewFileSet()
		for _, f := range parseDir(t, fset, dir) {
			name := filepath.Join(dir, filepath.Base(fset.File(f.Pos()).Name()))
			local := ""
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				switch {
				case path == "github.com/redis/go-redis/v9":
					local = "redis"
					if imp.Name != nil {
						local = imp.Name.Name
					}
					if local == "." || local == "_" {
						t.Errorf("%s imports go-redis as %q", name, local)
					}
				case strings.HasPrefix(path, "github.com/redis/"):
					t.Errorf("%s imports %s: only store speaks Redis", name, path)
				}
			}
			if local == "" {
				continue
			}
			// The parameter lists of exported functions: where the client
			// type may be named.
			var allowed []ast.Node
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.IsExported() && fd.Recv == nil {
					allowed = append(allowed, fd.Type.Params)
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != local {
					return true
				}
				inParams := slices.ContainsFunc(allowed, func(p ast.Node) bool { return p.Pos() <= sel.Pos() && sel.End() <= p.End() })
				if sel.Sel.Name != "UniversalClient" || !inParams {
					t.Errorf("%s: %s.%s: only store calls go-redis; other packages name redis.UniversalClient in a constructor's parameters, nothing else",
						fset.Position(sel.Pos()), local, sel.Sel.Name)
				}
				return true
			})
		}
	}
}

// parseDir parses the non-test Go files of dir, with comments.
func parseDir(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return files
}

// checkSet reports the names of got not in want, and those of want not in
// got.
func checkSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	var extra, missing []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	if len(extra) > 0 {
		t.Errorf("%s: unexpected %v (a protocol step goes to store/internal/protocol; an operator call goes into this test's list)", what, extra)
	}
	if len(missing) > 0 {
		t.Errorf("%s: missing %v", what, missing)
	}
}

// TestOnlyStoreCallsRedis type-checks the library packages other than
// store and fails on any use of an object of go-redis (a method called on
// a client value included, which no import check sees), but for the
// UniversalClient type named in an exported function's parameters.
func TestOnlyStoreCallsRedis(t *testing.T) {
	t.Parallel()
	const goRedis = "github.com/redis/go-redis/v9"
	// One importer for all: it type-checks each dependency (go-redis's
	// included) from source once.
	fset := token.NewFileSet()
	conf := types.Config{Importer: importer.ForCompiler(fset, "source", nil)}
	for _, dir := range []string{"../events", "../planner", "../consumer", "../dispatcher", "../listeners"} {
		files := parseDir(t, fset, dir)
		info := &types.Info{Uses: map[*ast.Ident]types.Object{}, Selections: map[*ast.SelectorExpr]*types.Selection{}}
		if _, err := conf.Check("github.com/taskino/taskino/"+filepath.Base(dir), fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", dir, err)
		}
		var allowed []ast.Node // exported functions' parameter lists
		for _, f := range files {
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.IsExported() && fd.Recv == nil {
					allowed = append(allowed, fd.Type.Params)
				}
			}
		}
		inParams := func(pos token.Pos) bool {
			return slices.ContainsFunc(allowed, func(p ast.Node) bool { return p.Pos() <= pos && pos < p.End() })
		}
		for id, obj := range info.Uses {
			if obj.Pkg() == nil || obj.Pkg().Path() != goRedis {
				continue
			}
			if _, isType := obj.(*types.TypeName); isType && obj.Name() == "UniversalClient" && inParams(id.Pos()) {
				continue
			}
			t.Errorf("%s: uses go-redis's %s: only store calls go-redis", fset.Position(id.Pos()), obj.Name())
		}
		for sel, s := range info.Selections {
			if p := s.Obj().Pkg(); p != nil && p.Path() == goRedis {
				t.Errorf("%s: calls go-redis's %s: only store calls go-redis", fset.Position(sel.Pos()), s.Obj().Name())
			}
		}
	}
}
