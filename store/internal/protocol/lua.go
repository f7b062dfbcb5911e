package protocol

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// What the scripts of both protocols share: Lua helpers, and the call of a
// hot-path script without go-redis's copy of its arguments.

// bulkLua defines bulk(cmd, key, list, extra): redis.call(cmd, key[, extra],
// items...) over list's items in chunks of 1,000 (an even number, so pairs
// stay whole; small enough for unpack), returning the replies' items
// joined. A batch's reads and writes of one shared key (watermarks, due
// scores, last-run records, acks) are one call each this way, not one per
// task.
const bulkLua = `
local function bulk(cmd, key, list, extra)
  local out = {}
  for j = 1, #list, 1000 do
    local last = math.min(j + 999, #list)
    local r
    if extra then
      r = redis.call(cmd, key, extra, unpack(list, j, last))
    else
      r = redis.call(cmd, key, unpack(list, j, last))
    end
    if type(r) == 'table' then
      for k = 1, #r do out[#out + 1] = r[k] end
    end
  end
  return out
end
`

// numLua defines N, small counts by their decimal text, and before(a, b),
// a < b for times in ms as decimal text: Lua's tonumber goes through
// strtod, about 2,000 instructions a call, which made it a sixth of a
// plan's cost. A count outside N falls back to tonumber (N[x] or
// tonumber(x)). before compares the canonical text Go and s() write (no
// plus sign, no leading zero) by length, then byte by byte (equal-length
// digit strings collate alike in every locale; a leading '-' does not, so
// it is found by its byte): -1 (none) is before everything, other negative
// times (before 1970) go through tonumber.
var numLua = func() string {
	var b strings.Builder
	b.WriteString("\nlocal N = {")
	for i := range 64 {
		fmt.Fprintf(&b, "['%d']=%d,", i, i)
	}
	b.WriteString(`}
local function before(a, b)
  if a == b or b == '-1' then return false end
  if a == '-1' then return true end
  if string.byte(a) == 45 or string.byte(b) == 45 then return tonumber(a) < tonumber(b) end
  if #a ~= #b then return #a < #b end
  return a < b
end
`)
	return b.String()
}()

// scriptArgs starts the arguments of a call of a hot-path script on keys,
// with room for n more: EVALSHA, the script's hash and its keys come
// first, so runScript hands the slice to go-redis as it is.
// (redis.Script.Run copies every argument into a new slice once more:
// about 2 KB per fire in a burst.)
func scriptArgs(script *redis.Script, keys []string, n int) []any {
	args := make([]any, 0, 3+len(keys)+n)
	args = append(args, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		args = append(args, k)
	}
	return args
}

// runScript sends a call of script whose arguments scriptArgs started.
// When the server does not have the script (a restart, a failover, SCRIPT
// FLUSH) it sends it again as EVAL with the script's text, which the
// server keeps: as redis.Script.Run does.
func runScript(ctx context.Context, rdb redis.UniversalClient, script *redis.Script, args []any) *redis.Cmd {
	nkeys := args[2].(int)
	cmd := redis.NewCmd(ctx, args...)
	if nkeys > 0 {
		cmd.SetFirstKeyPos(3) // EVALSHA sha numkeys key...: for Cluster routing
	}
	_ = rdb.Process(ctx, cmd)
	if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return cmd
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = args[3+i].(string)
	}
	return script.Eval(ctx, rdb, keys, args[3+nkeys:]...)
}
