#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import RouteTool
import VerifyJWTTool
import ForwardTool
import KVTool

// chain FILTER [ARGS...] '|' FILTER [ARGS...] ...
//
// The filters between http-decode and http-encode, run in one process: each record goes
// through them in order, as through `route ... | verify-jwt | forward ... | kv serve ...`,
// with each filter's own options, environment, checks and exit status at start. What the
// pipe between two processes cost (two system calls, a wake-up, and parsing and writing
// the record again) is paid once instead of once per filter (docs/chain.md).
let usage = """
usage: chain FILTER [OPTIONS...] ['|' FILTER [OPTIONS...]]... [--check]
Runs the filters in one process, in order, as a pipeline of them would. FILTER is one of
  route, verify-jwt, forward, kv (serve only); OPTIONS are that filter's own (its --help).
  Quote the '|' that separates them from the shell.
  --check   (anywhere, or any filter's own --check) check every filter's files and exit
exit status: 0 at end of input (or with --check, when every file checks); 1 when stdout
  closes; 2 for a bad option or file ("FILTER: reason" on stderr)

"""

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.isEmpty || arguments == ["--help"] || arguments == ["-h"] {
    FileOutput.writeAll(arguments.isEmpty ? 2 : 1, Array(usage.utf8))
    exit(arguments.isEmpty ? 2 : 0)
}
// --check means the same to every filter that has it, so it is taken wherever it stands.
let checkOnly = arguments.contains("--check")
arguments.removeAll { $0 == "--check" }

var segments: [[String]] = [[]]
for a in arguments {
    if a == "|" { segments.append([]) } else { segments[segments.count - 1].append(a) }
}

let filters = ["route", "verify-jwt", "forward", "kv"]
Log.program = "chain"
for segment in segments {
    guard let name = segment.first else { Log.fatal("an empty filter between two '|' (try --help)") }
    guard filters.contains(name) else { Log.fatal("'\(name)' is not a filter chain runs (route, verify-jwt, forward or kv)") }
}

var stages: [Stage] = []
for segment in segments {
    let rest = Array(segment.dropFirst())
    let options: ParsedOptions
    switch segment[0] {
    case "route":
        options = RouteOptions.table.parse(rest)
        stages.append(makeRouteStage(options))
    case "verify-jwt":
        options = VerifyJWTOptions.table.parse(rest)
        stages.append(makeVerifyJWTStage(options))
    case "forward":
        options = ForwardOptions.table.parse(rest)
        stages.append(makeForwardStage(options))
    default:
        options = KVOptions.table.parse(rest)
        stages.append(makeKVServeStage(options))
    }
}
if checkOnly { exit(0) }
Log.program = "chain"
FilterLoop.run(stages: stages)
