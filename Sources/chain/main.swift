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
import HTTPDecodeTool
import HTTPEncodeTool

// chain FILTER [ARGS...] '|' FILTER [ARGS...] ...
//
// The filters between http-decode and http-encode, run in one process: each record goes
// through them in order, as through `route ... | verify-jwt | forward ... | kv serve ...`,
// with each filter's own options, environment, checks and exit status at start. What the
// pipe between two processes cost (two system calls, a wake-up, and parsing and writing
// the record again) is paid once instead of once per filter (docs/chain.md).
let usage = """
usage: chain [http-decode [OPTIONS...] '|'] FILTER [OPTIONS...] ['|' FILTER [OPTIONS...]]...
             ['|' http-encode [OPTIONS...]] [--check]
Runs the filters in one process, in order, as a pipeline of them would. FILTER is one of
  route, verify-jwt, forward, kv (serve only); OPTIONS are that filter's own (its --help).
  tee FILE appends each record, as it reaches that point, to FILE.
  With http-decode first, standard input is the client's socket; with http-encode last
  too, the responses go onto it (else records go to standard output).
  Quote the '|' that separates them from the shell.
  --check   (anywhere) check every filter's options and files, and exit
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

let filters = ["route", "verify-jwt", "forward", "kv", "tee"]
Log.program = "chain"
for (i, segment) in segments.enumerated() {
    guard let name = segment.first else { Log.fatal("an empty filter between two '|' (try --help)") }
    switch name {
    case "http-decode" where i == 0, "http-encode" where i == segments.count - 1 && segments[0].first == "http-decode":
        break
    case "http-decode":
        Log.fatal("http-decode can only be the first filter of a chain")
    case "http-encode":
        Log.fatal("http-encode can only be the last filter of a chain that starts with http-decode")
    default:
        guard filters.contains(name) else {
            Log.fatal("'\(name)' is not a filter chain runs (http-decode, route, verify-jwt, forward, kv, tee or http-encode)")
        }
    }
}

var decoder: DecoderSettings?
var encoder: ResponseObserver?
var stages: [Stage] = []
for segment in segments {
    let rest = Array(segment.dropFirst())
    switch segment[0] {
    case "http-decode":
        let options = HTTPDecodeOptions.table.parse(rest)
        if options.flag("--incoming-cpu") { Log.program = "chain"; Log.fatal("http-decode --incoming-cpu is not a filter") }
        decoder = makeDecoderSettings(options)
    case "http-encode":
        encoder = makeResponseObserver(HTTPEncodeOptions.table.parse(rest))
    case "route":
        stages.append(makeRouteStage(RouteOptions.table.parse(rest)))
    case "verify-jwt":
        stages.append(makeVerifyJWTStage(VerifyJWTOptions.table.parse(rest)))
    case "forward":
        stages.append(makeForwardStage(ForwardOptions.table.parse(rest)))
    case "tee":
        stages.append(makeTeeStage(rest))
    default:
        stages.append(makeKVServeStage(KVOptions.table.parse(rest)))
    }
}
if checkOnly { exit(0) }

guard let decoder else {
    Log.program = "chain"
    FilterLoop.run(stages: stages)
}
Log.program = "http-decode"
var records = InProcessRecords(handle: FilterLoop.chained(stages),
                               encoder: encoder.map { InProcessRecords.Encoder(observer: $0) })
exit(runHTTPDecode(decoder, into: &records))
