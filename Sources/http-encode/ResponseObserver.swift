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
        if let received = access?["received_us"]?.int { f.durationMicros = max(monoNow - received, 0) }
        // One parse of the annotations for the three read here (three lookups in the raw
        // bytes cost more).
        guard let notes = record["annotations"]?.object else { return f }
        f.route = notes[AnnotationKey.route]?["name"]?.string
        if let auth = notes[AnnotationKey.auth] {
            f.uid = auth["uid"]?.string
            f.refusal = auth["refused"]?.string
        }
        if let up = notes["upstream"], let name = up["name"]?.string {
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
    /// Written straight into bytes (no JSONObject): it runs once per response.
    mutating func line(_ record: Record, _ f: Facts, access: JSONObject?, bytesOut: Int, wallMillis: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384)
        func key(_ k: StaticString) {
            out.append(contentsOf: UnsafeBufferPointer(start: k.utf8Start, count: k.utf8CodeUnitCount))
        }
        func string(_ k: StaticString, _ v: String?) {
            guard let v else { return }
            key(k)
            JSON.writeString(v, to: &out)
        }
        func number(_ k: StaticString, _ v: Int?) {
            guard let v else { return }
            key(k)
            ResponseWriter.appendDecimal(v, to: &out)
        }
        key("{\"time\":\"")
        out.append(contentsOf: timestamp(wallMillis))
        out.append(UInt8(ascii: "\""))
        string(",\"request_id\":", record.requestID)
        string(",\"remote\":", record.remote)
        string(",\"method\":", record["method"]?.string)
        string(",\"path\":", access?["path"]?.string)
        if logQuery { string(",\"query\":", access?["query"]?.string) }
        string(",\"route\":", f.route)
        number(",\"status\":", f.status)
        number(",\"bytes_in\":", access?["bytes_in"]?.int)
        number(",\"bytes_out\":", bytesOut)
        if let d = f.durationMicros {
            key(",\"duration_ms\":")
            out.append(contentsOf: DurationText.millis(d).utf8)
        }
        string(",\"uid\":", f.uid)
        string(",\"auth_error\":", f.refusal)
        if let up = f.upstream {
            string(",\"upstream\":{\"name\":", up.name)
            number(",\"status\":", up.status)
            if let ms = up.ms { key(",\"ms\":"); out.append(contentsOf: ms.utf8) }
            out.append(UInt8(ascii: "}"))
        }
        string(",\"user_agent\":", access?["user_agent"]?.string)
        key("}\n")
        return out
    }

    /// RFC 3339 with milliseconds; the part down to the second is formatted once a second.
    private var stampSecond = Int.min
    private var stampPrefix: [UInt8] = []
    private mutating func timestamp(_ millis: Int) -> [UInt8] {
        let second = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        if second != stampSecond {
            stampSecond = second
            stampPrefix = Array(Clock.iso8601(second).dropLast().utf8) + [UInt8(ascii: ".")]
        }
        let ms = millis - second * 1000
        return stampPrefix + [UInt8(ascii: "0") + UInt8(ms / 100), UInt8(ascii: "0") + UInt8(ms / 10 % 10),
                              UInt8(ascii: "0") + UInt8(ms % 10), UInt8(ascii: "Z")]
    }
}

enum DurationText {
    /// Microseconds as milliseconds with three decimals: "12.345".
    static func millis(_ micros: Int) -> String {
        let frac = micros % 1000
        return "\(micros / 1000)." + (frac < 10 ? "00" : frac < 100 ? "0" : "") + String(frac)
    }
}
