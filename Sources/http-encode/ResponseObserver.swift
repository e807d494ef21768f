#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import SharedMemory

/// What http-encode does once a response has been written: one access-log line and the
/// request metrics (count by route and status, duration by route, token refusals, the
/// upstream's answer when the request was forwarded). It reads only the record: the
/// `access` member http-decode stamped and the annotations other filters left.
public struct ResponseObserver {
    public var log: AccessLog?
    public var logQuery = false
    public let metrics: Metrics?
    /// Name-table indexes already looked up: a pipeline sees few routes, many times.
    private var routeIndex: [String: Int] = [:]
    private var upstreamIndex: [String: Int] = [:]
    private let now: () -> (wallMillis: Int, monoMicros: Int)

    public init(log: AccessLog?, logQuery: Bool = false, metrics: Metrics? = Metrics.shared,
                now: @escaping () -> (wallMillis: Int, monoMicros: Int) = { (Clock.nowMillis(), Clock.monotonicMicros()) }) {
        self.log = log
        self.logQuery = logQuery
        self.metrics = metrics
        self.now = now
    }

    /// The facts of one response, as the access log and the metrics see them.
    public struct Facts: Equatable {
        public var route: String?
        public var status: Int
        public var durationMicros: Int?
        public var uid: String?
        public var refusal: String?
        public var upstream: (name: String, status: Int?, ms: String?)?

        public static func == (a: Facts, b: Facts) -> Bool {
            a.route == b.route && a.status == b.status && a.durationMicros == b.durationMicros && a.uid == b.uid
                && a.refusal == b.refusal && a.upstream?.name == b.upstream?.name && a.upstream?.status == b.upstream?.status
                && a.upstream?.ms == b.upstream?.ms
        }
    }

    public mutating func responded(_ record: Record, bytesOut: Int) {
        if log == nil && metrics == nil { return }
        let (wall, mono) = now()
        let access = record["access"]?.object
        let facts = Self.facts(record, access: access, monoNow: mono)
        if let metrics { count(facts, metrics) }
        if let log, log.destination != .off {
            log.write(line(record, facts, access: access, bytesOut: bytesOut, wallMillis: wall))
        }
    }

    static func facts(_ record: Record, access: JSONObject?, monoNow: Int) -> Facts {
        var f = Facts(status: record.status ?? 0)
        f.route = record.annotation(AnnotationKey.route)?["name"]?.string
        if let received = access?["received_us"]?.int { f.durationMicros = max(monoNow - received, 0) }
        if let auth = record.annotation(AnnotationKey.auth) {
            f.uid = auth["uid"]?.string
            f.refusal = auth["refused"]?.string
        }
        if let up = record.annotation("upstream"), let name = up["name"]?.string {
            var ms: String?
            if case .number(let text)? = up["ms"] { ms = text }
            f.upstream = (name, up["status"]?.int, ms)
        }
        return f
    }

    private mutating func count(_ f: Facts, _ m: Metrics) {
        let layout = m.layout
        let route = f.route ?? "none"
        let r: Int
        if let known = routeIndex[route] { r = known } else { r = m.nameIndex(layout.routes, route); routeIndex[route] = r }
        m.add(layout.requests, r, MetricsLayout.statusIndex(f.status))
        if let d = f.durationMicros { m.observe(layout.requestDuration, r, micros: Int64(d)) }
        if let reason = f.refusal {
            m.add(layout.tokenRefusals, MetricsLayout.refusalReasons.firstIndex(of: reason) ?? MetricsLayout.refusalReasons.count - 1)
        }
        if let up = f.upstream {
            let u: Int
            if let known = upstreamIndex[up.name] { u = known } else { u = m.nameIndex(layout.upstreams, up.name); upstreamIndex[up.name] = u }
            m.add(layout.upstreamRequests, u, MetricsLayout.statusIndex(up.status ?? 502))
            if let ms = up.ms.flatMap(Double.init) { m.observe(layout.upstreamDuration, u, micros: Int64(ms * 1000)) }
        }
    }

    /// One access-log line, newline included. Never a header but the user agent, never
    /// the query unless asked for: tokens, cookies and secrets live in headers and queries.
    func line(_ record: Record, _ f: Facts, access: JSONObject?, bytesOut: Int, wallMillis: Int) -> [UInt8] {
        var o = JSONObject()
        o.members.reserveCapacity(16)
        o.members.append(.init("time", .string(Clock.iso8601Millis(wallMillis))))
        if let id = record.requestID { o.members.append(.init("request_id", .string(id))) }
        if let remote = record.remote { o.members.append(.init("remote", .string(remote))) }
        if let method = record["method"]?.string { o.members.append(.init("method", .string(method))) }
        if let path = access?["path"]?.string { o.members.append(.init("path", .string(path))) }
        if logQuery, let query = access?["query"]?.string { o.members.append(.init("query", .string(query))) }
        if let route = f.route { o.members.append(.init("route", .string(route))) }
        o.members.append(.init("status", JSON(f.status)))
        if let bytes = access?["bytes_in"]?.int { o.members.append(.init("bytes_in", JSON(bytes))) }
        o.members.append(.init("bytes_out", JSON(bytesOut)))
        if let d = f.durationMicros { o.members.append(.init("duration_ms", .number(DurationText.millis(d)))) }
        if let uid = f.uid { o.members.append(.init("uid", .string(uid))) }
        if let reason = f.refusal { o.members.append(.init("auth_error", .string(reason))) }
        if let up = f.upstream {
            var u = JSONObject([("name", .string(up.name))])
            if let s = up.status { u["status"] = JSON(s) }
            if let ms = up.ms { u["ms"] = .number(ms) }
            o.members.append(.init("upstream", .object(u)))
        }
        if let agent = access?["user_agent"]?.string { o.members.append(.init("user_agent", .string(agent))) }
        var bytes = o.serialized()
        bytes.append(0x0A)
        return bytes
    }
}

enum DurationText {
    /// Microseconds as milliseconds with three decimals: "12.345".
    static func millis(_ micros: Int) -> String {
        let frac = micros % 1000
        return "\(micros / 1000)." + (frac < 10 ? "00" : frac < 100 ? "0" : "") + String(frac)
    }
}
