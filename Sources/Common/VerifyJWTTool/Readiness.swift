#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net
import KV
import SharedMemory

/// What /readyz checks, from the environment every pipeline stage shares
/// (pipelines/connection sets EDGEPIPE_KV and EDGEPIPE_AUDIT_FILE).
struct ReadinessSettings {
    /// The KV store location (EDGEPIPE_KV); nil: not checked.
    var store: String?
    /// The audit log (EDGEPIPE_AUDIT_FILE); nil: not checked.
    var auditFile: String?
    /// The forward filter's upstreams file (EDGEPIPE_UPSTREAMS); nil: not checked.
    var upstreamsFile: String?
    /// How long an upstream check's result stands, across every pipeline of the machine.
    var upstreamCacheMillis = 3000
}

/// The readiness checks. Each is nil when it holds, else the reason; `keys` comes from the
/// gate's KeyStore (a fetch, within the usual cooldown, when nothing usable is held).
final class Readiness {
    let settings: ReadinessSettings
    let keys: () -> String?
    let metrics: Metrics?
    private var store: (any KVStore)?

    init(settings: ReadinessSettings, keys: @escaping () -> String?, metrics: Metrics? = Metrics.shared) {
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
    }

    /// Every check, in a fixed order: name and problem (nil: ok). Checks that are not
    /// configured are left out.
    func run() -> [(String, String?)] {
        var results: [(String, String?)] = [("keys", keys())]
        if let location = settings.store { results.append(("store", storeCheck(location))) }
        if let audit = settings.auditFile { results.append(("audit", auditProblem(audit))) }
        if let file = settings.upstreamsFile { results.append(("upstreams", upstreamsProblem(file))) }
        return results
    }

    /// The /readyz answer: 200 ready, or 503 naming the failing checks.
    func respond(to record: Record) -> Record {
        let results = run()
        var checks = JSONObject()
        for (name, problem) in results {
            checks[name] = .object(problem.map { JSONObject([("ok", .bool(false)), ("error", .string($0))]) }
                                   ?? JSONObject([("ok", .bool(true))]))
        }
        let failing = results.filter { $0.1 != nil }.map(\.0)
        let body: JSONObject
        if failing.isEmpty {
            body = JSONObject([("status", "ready"), ("checks", .object(checks))])
        } else {
            body = JSONObject([("status", "not_ready"), ("error", "not_ready"),
                               ("message", .string("failing: " + failing.joined(separator: ", "))), ("checks", .object(checks))])
        }
        var headers = [Header("content-type", "application/json"), Header("cache-control", "no-store")]
        if !failing.isEmpty { headers.append(Header("retry-after", "5")) }
        return record.response(status: failing.isEmpty ? 200 : 503, headers: headers, body: body.serialized())
    }

    private func storeCheck(_ location: String) -> String? {
        if store == nil {
            do { store = try openStore(location) } catch { return error.description }
        }
        return storeProblem(store!)
    }

    /// The audit log can be appended to: opened for writing (created when missing, as the
    /// first append would), never written here.
    func auditProblem(_ path: String) -> String? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return "\(path): \(String(cString: strerror(errno)))" }
        close(fd)
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        // The chain's head file is replaced by rename: the directory must take new files too.
        return directoryProblem(directory.isEmpty ? "/" : directory)
    }

    func upstreamsProblem(_ file: String) -> String? {
        let upstreams: [Upstream]
        switch ReadyUpstreams.load(file) {
        case .failure(let f): return f.message
        case .success(let u): upstreams = u
        }
        let now = Int64(Clock.monotonicMillis())
        if let m = metrics {
            let at = m.slots.load(m.layout.upstreamCheck), result = m.slots.load(m.layout.upstreamCheck + 1)
            if at > 0 && now - at < Int64(settings.upstreamCacheMillis) {
                if result == 0 { return nil }
                let i = Int(result - 1)
                let name = i < upstreams.count ? upstreams[i].name : "?"
                return "upstream \(name): no address accepted a connection (checked \(now - at) ms ago)"
            }
        }
        var failed: Int64 = 0
        var problem: String?
        for (i, upstream) in upstreams.enumerated() {
            if let p = ReadyUpstreams.problem([upstream]) { problem = p; failed = Int64(i + 1); break }
        }
        if let m = metrics {
            m.slots.store(m.layout.upstreamCheck + 1, failed)
            m.slots.store(m.layout.upstreamCheck, now)
        }
        return problem
    }
}
