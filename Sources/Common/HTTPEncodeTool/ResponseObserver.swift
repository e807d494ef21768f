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
    /// The series this observer updates, addressed once.
    private let series: Series?
    /// Name-table indexes already looked up: a pipeline sees few routes, many times.
    private var routeIndex = NameIndexCache()
    private var upstreamIndex = NameIndexCache()
    /// nil: the clocks themselves, the wall clock only when a line is logged.
    private let now: (() -> (wallMillis: Int, monoMicros: Int))?

    public init(log: AccessLog?, logQuery: Bool = false, metrics: Metrics? = Metrics.shared,
                now: (() -> (wallMillis: Int, monoMicros: Int))? = nil) {
        self.log = log
        self.logQuery = logQuery
        self.metrics = metrics
        self.now = now
        series = metrics.map { Series($0.layout) }
    }

    private struct Series {
        let requests, requestDuration, tokenRefusals, upstreamRequests, upstreamDuration: MetricSeries
        init(_ layout: MetricsLayout) {
            requests = layout.requests.series
            requestDuration = layout.requestDuration.series
            tokenRefusals = layout.tokenRefusals.series
            upstreamRequests = layout.upstreamRequests.series
            upstreamDuration = layout.upstreamDuration.series
        }
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

    /// `status`: the one written (ResponseWriter.writtenStatus); nil reads the record's.
    public mutating func responded(_ record: Record, status: Int? = nil, bytesOut: Int) {
        let logging = log.map { $0.destination != .off } ?? false
        if metrics == nil && !logging { return }
        let (wall, mono) = now?() ?? (logging ? Clock.nowMillis() : 0, Clock.monotonicMicros())
        // The access object is parsed only for the log line, which reads most of it.
        let access = logging ? record["access"]?.object : nil
        let facts = Self.facts(record, status: status ?? record.status ?? 0, access: access, monoNow: mono)
        if let metrics, let series { count(facts, metrics, series) }
        if logging, let log {
            log.write(line(record, facts, access: access, bytesOut: bytesOut, wallMillis: wall))
        }
    }

    /// What `facts` reads of the annotations, building only these values (and the uid, for
    /// a log line).
    private static let countedPaths = JSONPaths([
        ["annotations", AnnotationKey.route, "name"], ["annotations", AnnotationKey.auth, "refused"],
        ["annotations", "upstream", "name"], ["annotations", "upstream", "status"], ["annotations", "upstream", "ms"],
    ])
    private static let loggedPaths = JSONPaths(countedPaths.names + [["annotations", AnnotationKey.auth, "uid"]])
    private static let receivedPath = JSONPaths([["access", "received_us"]])

    /// `access`: the record's access object when the caller has parsed it for a log line
    /// (the uid is read then, for that line), else nil.
    static func facts(_ record: Record, status: Int, access: JSONObject?, monoNow: Int) -> Facts {
        // http-decode writes received_us first in access: read there, or looked up.
        let received = access.map { $0["received_us"]?.int }
            ?? record.leadingInt(of: "access", key: "received_us") ?? record.values(at: receivedPath)[0]?.int
        // Plain locals, one Facts at the end: a Facts captured by the closure is copied
        // member by member.
        var route: String?, refusal: String?, uid: String?
        var upstreamName: String?, upstreamStatus: Int?, upstreamMs: String?
        if let notes = record.parsedAnnotations {
            // A chain's: a few look-ups in a small tree, no scan.
            route = notes[AnnotationKey.route]?["name"]?.string
            if let auth = notes[AnnotationKey.auth]?.object {
                refusal = auth["refused"]?.string
                if access != nil { uid = auth["uid"]?.string }
            }
            if let up = notes["upstream"]?.object {
                upstreamName = up["name"]?.string
                upstreamStatus = up["status"]?.int
                if case .number(let text)? = up["ms"] { upstreamMs = text }
            }
        } else {
            record.forEachValue(at: access != nil ? loggedPaths : countedPaths) { i, value in
                switch i {
                case 0: route = value.string
                case 1: refusal = value.string
                case 2: upstreamName = value.string
                case 3: upstreamStatus = value.int
                case 4: if case .number(let text) = value { upstreamMs = text }
                default: uid = value.string
                }
            }
        }
        return Facts(route: route, status: status, durationMicros: received.map { max(monoNow - $0, 0) }, uid: uid,
                     refusal: refusal, upstream: upstreamName.map { ($0, upstreamStatus, upstreamMs) })
    }

    private mutating func count(_ f: Facts, _ m: Metrics, _ s: Series) {
        let layout = m.layout
        let r = routeIndex.index(of: f.route ?? "none") { m.nameIndex(layout.routes, $0) }
        m.responded(requests: s.requests.slot(r, MetricsLayout.statusIndex(f.status)), duration: s.requestDuration.slot(r),
                    micros: f.durationMicros.map { Int64($0) })
        if let reason = f.refusal {
            m.add(slot: s.tokenRefusals.slot(MetricsLayout.refusalReasons.firstIndex(of: reason) ?? MetricsLayout.refusalReasons.count - 1))
        }
        if let up = f.upstream {
            let u = upstreamIndex.index(of: up.name) { m.nameIndex(layout.upstreams, $0) }
            m.add(slot: s.upstreamRequests.slot(u, MetricsLayout.statusIndex(up.status ?? 502)))
            if let ms = up.ms.flatMap(Double.init) { m.observe(series: s.upstreamDuration.slot(u), micros: Int64(ms * 1000)) }
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

/// Names already given an index in a metrics name table. A pipeline sees a few routes and
/// upstreams, over and over: a short list compared newest first, no hashing per request.
struct NameIndexCache {
    private var known: [(name: String, index: Int)] = []

    mutating func index(of name: String, _ lookUp: (String) -> Int) -> Int {
        if let hit = known.last(where: { $0.name == name }) { return hit.index }
        let i = lookUp(name)
        known.append((name, i))
        return i
    }
}

enum DurationText {
    /// Microseconds as milliseconds with three decimals: "12.345".
    static func millis(_ micros: Int) -> String {
        let frac = micros % 1000
        return "\(micros / 1000)." + (frac < 10 ? "00" : frac < 100 ? "0" : "") + String(frac)
    }
}
