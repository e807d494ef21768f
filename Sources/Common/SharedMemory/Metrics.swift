#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

// The metrics of a machine's pipelines, in one SharedSlots file. Every process that opens
// it computes the same slot for the same series: the families and their label values are
// declared once, below, and a label whose values are names (routes, upstreams, webhook
// types) gets its index from a small table of names kept in the same file, claimed with
// compare-and-exchange by whichever process sees a name first. An update is one atomic
// add: no lock, no system call.
//
// The counters are kept once per CPU (a shard): a pipeline adds to the copy of the CPU it
// runs on, and a scrape sums the copies. With one copy, every request's adds would move the
// same cache lines between CPUs, since every pipeline counts into the same series.

/// One label of a family: a fixed list of values, or names interned in a shared table.
public enum MetricLabel: Sendable {
    case fixed(String, [String])
    case names(String, NameTable)

    var name: String {
        switch self {
        case .fixed(let n, _), .names(let n, _): return n
        }
    }

    /// Values this label can take, the last being the catch-all ("other").
    var cardinality: Int {
        switch self {
        case .fixed(_, let values): return values.count
        case .names(_, let table): return table.capacity + 1
        }
    }
}

/// A table of up to `capacity` names. Each entry is a hash slot and `nameSlots` slots of
/// name bytes; a name that does not fit or finds the table full counts as "other".
public struct NameTable: Sendable {
    public let capacity: Int
    static let nameSlots = 8   // 64 bytes: a name of at most 63 bytes, NUL-terminated
    static var entrySlots: Int { 1 + nameSlots }
    var base = 0
    init(capacity: Int) { self.capacity = capacity }
    var slotCount: Int { capacity * Self.entrySlots }
}

public enum MetricType: String, Sendable { case counter, gauge, histogram }

/// A family: name, help, type and labels; `base` is its first slot.
public struct MetricFamily: Sendable {
    public let name: String
    public let help: String
    public let type: MetricType
    public let labels: [MetricLabel]
    var base: Int {
        get { series.base }
        set { series.base = newValue }
    }

    /// The series' addresses, from the labels' cardinalities (1 for a label it lacks).
    public internal(set) var series: MetricSeries

    init(_ name: String, _ type: MetricType, _ help: String, _ labels: [MetricLabel] = []) {
        self.name = name; self.type = type; self.help = help; self.labels = labels
        precondition(labels.count <= 2, "families have at most two labels")
        series = MetricSeries(first: labels.first?.cardinality ?? 1, second: labels.count > 1 ? labels[1].cardinality : 1,
                              stride: type == .histogram ? Histogram.slotsPerSeries : 1)
    }

    var seriesCount: Int { labels.reduce(1) { $0 * $1.cardinality } }
    var slotsPerSeries: Int { series.stride }
    var slotCount: Int { seriesCount * slotsPerSeries }
}

/// Where a family's series live: a value copied out of the layout once (at start), so that
/// an update is integer arithmetic and one atomic add, with no family (names, help, label
/// lists) passed around per request.
public struct MetricSeries: Sendable {
    public internal(set) var base = 0
    let first: Int
    let second: Int
    let stride: Int

    /// The first slot of the series with label values `a` and `b` (indexes; one out of
    /// range counts as its label's last value, "other").
    @inline(__always) public func slot(_ a: Int = 0, _ b: Int = 0) -> Int {
        let x = a >= 0 && a < first ? a : first - 1
        let y = b >= 0 && b < second ? b : second - 1
        return base + (x * second + y) * stride
    }
}

/// Request and upstream durations: bucket bounds in microseconds (Prometheus shows seconds).
/// Per series: one slot per bucket (not cumulative, so an observation is one add), one
/// for +Inf, one for the sum in microseconds; the count is the buckets' total.
public enum Histogram {
    public static let boundsMicros: [Int64] = [500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000,
                                               100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000]
    static var slotsPerSeries: Int { boundsMicros.count + 2 }

    /// The bucket of an observation: the first bound it does not exceed, else +Inf.
    static func bucket(_ micros: Int64) -> Int {
        var i = 0
        while i < boundsMicros.count && micros > boundsMicros[i] { i += 1 }
        return i
    }
}

/// The declared layout: every family and name table, and where each starts.
public struct MetricsLayout: Sendable {
    public static let statuses = ["200", "201", "202", "204", "206", "301", "302", "303", "304", "307", "308",
                                  "400", "401", "403", "404", "405", "406", "408", "409", "410", "411", "412",
                                  "413", "414", "415", "416", "417", "421", "422", "425", "429", "431", "451",
                                  "500", "501", "502", "503", "504", "505", "1xx", "2xx", "3xx", "4xx", "5xx"]
    public static let refusalReasons = ["missing_token", "not_bearer", "two_authorizations", "too_large", "malformed",
                                        "algorithm_not_allowed", "missing_kid", "unsupported_critical", "unknown_key",
                                        "key_mismatch", "unusable_key", "bad_signature", "expired", "not_yet_valid",
                                        "issued_in_future", "wrong_issuer", "wrong_audience", "invalid_subject",
                                        "missing_claim", "invalid_claim", "keys_unavailable", "identity_headers", "forbidden", "other"]
    public static let fetchOutcomes = ["ok", "http_error", "unusable", "network_error", "other"]
    public static let webhookOutcomes = ["applied", "duplicate", "stale", "pending", "ignored", "invalid", "rejected", "error", "other"]
    public static let backends = ["directory", "redis", "other"]
    public static let storeOperations = ["get", "put", "create", "compare_and_swap", "delete", "list", "batch", "other"]

    /// Not a metric: /readyz's last upstream check, shared so that pipelines started one
    /// per probe still check at most every few seconds: [monotonic ms of the check,
    /// 0 when every upstream was up, else 1 + the index of the first that was not].
    public private(set) var upstreamCheck = 0

    public var routes = NameTable(capacity: 64)
    public var upstreams = NameTable(capacity: 32)
    public var eventTypes = NameTable(capacity: 64)

    public var requests: MetricFamily
    public var requestDuration: MetricFamily
    public var tokenRefusals: MetricFamily
    public var keyFetches: MetricFamily
    public var keyFetchedAt: MetricFamily
    public var keyExpiresAt: MetricFamily
    public var webhookEvents: MetricFamily
    public var auditAppends: MetricFamily
    public var auditSpills: MetricFamily
    public var storeOperations: MetricFamily
    public var storeErrors: MetricFamily
    public var upstreamRequests: MetricFamily
    public var upstreamDuration: MetricFamily
    public var pipelinesStarted: MetricFamily
    public var connectionsOpen: MetricFamily
    public var accessLogFailures: MetricFamily

    /// Slot 0 holds the layout's fingerprint; then the name tables and the upstream check,
    /// shared by all; then, from `countersBase`, the families: one CPU's shard.
    public private(set) var slotCount = 1
    /// The first slot of the families, on a cache line of its own (8 slots of 8 bytes).
    public private(set) var countersBase = 0
    /// Slots from one shard of the families to the next: whole cache lines.
    public private(set) var shardStride = 0

    public init() {
        // Addresses follow declaration order; the fingerprint below changes with any of it.
        routes.base = 1
        upstreams.base = routes.base + routes.slotCount
        eventTypes.base = upstreams.base + upstreams.slotCount
        upstreamCheck = eventTypes.base + eventTypes.slotCount
        countersBase = Self.lineAligned(upstreamCheck + 2)
        var next = countersBase
        let route = MetricLabel.names("route", routes)
        let status = MetricLabel.fixed("status", Self.statuses)
        let upstream = MetricLabel.names("upstream", upstreams)
        let backend = MetricLabel.fixed("backend", Self.backends)
        requests = .init("edgepipe_http_requests_total", .counter, "Responses written, by route and status.", [route, status])
        requestDuration = .init("edgepipe_http_request_duration_seconds", .histogram,
                                "From a request's first byte to its response's last byte.", [route])
        tokenRefusals = .init("edgepipe_token_refusals_total", .counter, "Requests refused by verify-jwt, by reason.",
                              [.fixed("reason", Self.refusalReasons)])
        keyFetches = .init("edgepipe_jwks_fetches_total", .counter, "Key-set fetches, by outcome.",
                           [.fixed("outcome", Self.fetchOutcomes)])
        keyFetchedAt = .init("edgepipe_jwks_fetched_timestamp_seconds", .gauge, "When the key set in use was fetched (0: never).")
        keyExpiresAt = .init("edgepipe_jwks_expires_timestamp_seconds", .gauge, "When the key set in use reaches its max-age.")
        webhookEvents = .init("edgepipe_webhook_events_total", .counter, "Stripe events, by type and outcome.",
                              [.names("type", eventTypes), .fixed("outcome", Self.webhookOutcomes)])
        auditAppends = .init("edgepipe_audit_appends_total", .counter, "Audit entries appended to the log.")
        auditSpills = .init("edgepipe_audit_spills_total", .counter, "Audit entries that went to the spill file instead.")
        storeOperations = .init("edgepipe_store_operations_total", .counter, "KV store operations, by backend and operation.",
                                [backend, .fixed("operation", Self.storeOperations)])
        storeErrors = .init("edgepipe_store_errors_total", .counter, "KV store operations that failed, by backend.", [backend])
        upstreamRequests = .init("edgepipe_upstream_requests_total", .counter, "Forwarded requests, by upstream and status.",
                                 [upstream, status])
        upstreamDuration = .init("edgepipe_upstream_duration_seconds", .histogram, "Time spent waiting on an upstream.", [upstream])
        pipelinesStarted = .init("edgepipe_pipelines_started_total", .counter, "Pipelines started (one per connection).")
        connectionsOpen = .init("edgepipe_connections_open", .gauge, "Connections whose pipeline is running now.")
        accessLogFailures = .init("edgepipe_access_log_write_errors_total", .counter, "Access-log lines that could not be written.")
        // One family after another, in declaration order. Plain assignments, not key paths:
        // every filter computes this layout at start, and a key-path list costs its runtime
        // metadata look-ups (about 200 k instructions, callgrind) on every pipeline start.
        func place(_ family: inout MetricFamily) {
            family.base = next
            next += family.slotCount
        }
        place(&requests); place(&requestDuration); place(&tokenRefusals); place(&keyFetches)
        place(&keyFetchedAt); place(&keyExpiresAt); place(&webhookEvents); place(&auditAppends)
        place(&auditSpills); place(&storeOperations); place(&storeErrors); place(&upstreamRequests)
        place(&upstreamDuration); place(&pipelinesStarted); place(&connectionsOpen); place(&accessLogFailures)
        shardStride = Self.lineAligned(next) - countersBase
        slotCount = countersBase + shardStride
    }

    static func lineAligned(_ slot: Int) -> Int { (slot + 7) / 8 * 8 }

    /// Every family, in the order `init` places them.
    public var allFamilies: [MetricFamily] {
        [requests, requestDuration, tokenRefusals, keyFetches, keyFetchedAt, keyExpiresAt,
         webhookEvents, auditAppends, auditSpills, storeOperations, storeErrors,
         upstreamRequests, upstreamDuration, pipelinesStarted, connectionsOpen, accessLogFailures]
    }

    /// `computedFingerprint` of this build's layout, written out: every filter checks it at
    /// start, and computing it there builds arrays of the layout's own types, whose runtime
    /// metadata costs tens of thousands of instructions per process. MetricsTests fails
    /// when the layout changes and this constant does not.
    public static let fingerprint: Int64 = 5989962400243121383

    /// A hash of every name, label and size: a process built with another layout must not
    /// read or write this file's slots.
    public var computedFingerprint: Int64 {
        var h: UInt64 = 0xcbf29ce484222325
        // Computed at every start: numbers are mixed as numbers, not formatted as text.
        func mix(_ s: String) { for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }; h = (h ^ 0xFF) &* 0x100000001b3 }
        func mix(_ n: Int) { h = (h ^ UInt64(bitPattern: Int64(n))) &* 0x100000001b3; h = (h ^ 0xFE) &* 0x100000001b3 }
        for f in allFamilies {
            mix(f.name); mix(f.type.rawValue); mix(f.slotCount)
            for l in f.labels { mix(l.name); mix(l.cardinality) }
        }
        for b in Histogram.boundsMicros { mix(Int(b)) }
        mix(upstreamCheck); mix(countersBase); mix(shardStride)
        return Int64(bitPattern: h | 1)
    }

    /// The index of a status among `statuses`: the code itself, else its class.
    public static func statusIndex(_ status: Int) -> Int {
        switch status {
        case 200: return 0
        case 201: return 1
        case 202: return 2
        case 204: return 3
        case 206: return 4
        case 301...304: return status - 296
        case 307: return 9
        case 308: return 10
        case 400...425:
            if let i = statuses.firstIndex(of: String(status)) { return i }
        case 429: return 30
        case 431: return 31
        case 451: return 32
        case 500...505: return status - 467
        default: break
        }
        switch status / 100 {
        case 1: return 39
        case 2: return 40
        case 3: return 41
        case 4: return 42
        default: return 43
        }
    }
}

/// The CPU this thread runs on now (glibc's sched_getcpu, which reads it from the rseq area
/// the kernel keeps up to date: no system call). Glibc declares it only under _GNU_SOURCE,
/// which the Swift module of Glibc is built without; it takes no argument and returns an
/// int, which Swift's calling convention passes as C's does.
@_silgen_name("sched_getcpu") private func sched_getcpu() -> Int32

/// The open metrics file. Every method is one or a few atomic operations.
public final class Metrics: @unchecked Sendable {
    public let layout: MetricsLayout
    /// The file's slots: the shared ones (fingerprint, name tables, upstream check) are read
    /// and written here directly; a family's are read through `value(_:)`, which sums the shards.
    public let slots: SharedSlots
    public let path: String
    /// Copies of the families: one per CPU of this machine (up to 64; CPUs beyond share).
    public let shards: Int

    /// The CPUs this machine has, which every process of it reads alike.
    public static let machineShards = max(1, min(sysconf(Int32(_SC_NPROCESSORS_CONF)), 64))

    public enum OpenError: Error, CustomStringConvertible, Sendable {
        case file(String)
        case otherLayout(String)
        public var description: String {
            switch self {
            case .file(let why): return why
            case .otherLayout(let path): return "\(path) holds metrics of another layout (an older or newer build); it is reset when the service starts"
            }
        }
    }

    public init(path: String, layout: MetricsLayout = MetricsLayout(), shards: Int = Metrics.machineShards) throws(OpenError) {
        precondition(shards >= 1)
        do {
            slots = try SharedSlots(path: path, count: layout.countersBase + shards * layout.shardStride)
        } catch {
            throw .file(error.description)
        }
        self.layout = layout
        self.path = path
        self.shards = shards
        // A file laid out for another number of shards is another layout: mixed in.
        let want = MetricsLayout.fingerprint ^ (Int64(shards) << 8)
        let (_, found) = slots.compareExchange(0, expected: 0, desired: want)
        if found != 0 && found != want { throw .otherLayout(path) }
    }

    // MARK: The process's metrics

    /// Where the metrics file is: EDGEPIPE_METRICS (a path, or "off"), else
    /// $EDGEPIPE_DATA/run/metrics; nil when off or when neither is set.
    public static func configuredPath(_ env: (String) -> String?) -> String? {
        if let v = env("EDGEPIPE_METRICS"), !v.isEmpty {
            return v == "off" ? nil : v
        }
        return dataPath("run/metrics", env: env)
    }

    /// This process's metrics, opened on first use. When the file cannot be opened, one
    /// line goes to stderr and updates do nothing: metrics never stop a request.
    public static let shared: Metrics? = {
        guard let path = configuredPath({ getenv($0).map { String(cString: $0) } }) else { return nil }
        do {
            return try Metrics(path: path)
        } catch {
            let line = "metrics: \(error); not counting\n"
            _ = line.withCString { write(2, $0, strlen($0)) }
            return nil
        }
    }()

    // MARK: Updates

    /// Where this CPU's shard is, relative to the first.
    @inline(__always) var shardOffset: Int {
        shards == 1 ? 0 : Int(UInt32(bitPattern: sched_getcpu()) % UInt32(shards)) * layout.shardStride
    }

    /// Adds to a series: `a` and `b` are the indexes of its first and second label values.
    public func add(_ family: MetricFamily, _ a: Int = 0, _ b: Int = 0, delta: Int64 = 1) {
        slots.add(index(family, a, b) + shardOffset, delta)
    }

    /// A gauge set, not added to: it lives in the first shard (the others stay zero).
    public func set(_ family: MetricFamily, _ value: Int64) {
        slots.store(family.base, value)
    }

    /// A family's slot, summed over the shards.
    public func value(_ slot: Int) -> Int64 {
        var sum: Int64 = 0
        for s in 0..<shards { sum &+= slots.load(slot + s * layout.shardStride) }
        return sum
    }

    public func observe(_ family: MetricFamily, _ a: Int = 0, micros: Int64) {
        observe(series: index(family, a, 0), micros: micros)
    }

    /// Adds to the slot `MetricSeries.slot` gave: the per-request form of `add`.
    @inline(__always) public func add(slot: Int, delta: Int64 = 1) {
        slots.add(slot + shardOffset, delta)
    }

    /// An observation in the histogram series whose first slot `MetricSeries.slot` gave.
    public func observe(series: Int, micros: Int64) {
        observe(series + shardOffset, micros)
    }

    /// A response: one to the count series `requests`, and its duration (when known) into the
    /// histogram series `duration`, all in this CPU's shard, found once.
    public func responded(requests: Int, duration: Int, micros: Int64?) {
        let shard = shardOffset
        slots.add(requests + shard, 1)
        if let micros { observe(duration + shard, micros) }
    }

    private func observe(_ first: Int, _ micros: Int64) {
        slots.add(first + Histogram.bucket(micros), 1)
        slots.add(first + Histogram.slotsPerSeries - 1, max(micros, 0))
    }

    /// The first slot of a series (families have at most two labels). A value out of
    /// range counts as the label's last value ("other").
    func index(_ family: MetricFamily, _ a: Int, _ b: Int) -> Int {
        family.series.slot(a, b)
    }

    // MARK: Names

    /// The index of `name` in `table`, claiming an entry when it is new; `capacity` (the
    /// "other" value) when it is empty, too long or the table is full.
    public func nameIndex(_ table: NameTable, _ name: String) -> Int {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count < NameTable.nameSlots * 8 else { return table.capacity }
        var h: UInt64 = 0xcbf29ce484222325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        let hash = Int64(bitPattern: h & 0x7FFF_FFFF_FFFF_FFFF) | 1   // positive: 0 free, -1 being written
        var i = Int(UInt64(bitPattern: hash) % UInt64(table.capacity))
        for _ in 0..<table.capacity {
            let slot = table.base + i * NameTable.entrySlots
            var seen = slots.load(slot)
            if seen == 0 {
                let (won, found) = slots.compareExchange(slot, expected: 0, desired: -1)
                if won {
                    var packed = bytes + [UInt8](repeating: 0, count: NameTable.nameSlots * 8 - bytes.count)
                    packed.withUnsafeMutableBytes { raw in
                        for k in 0..<NameTable.nameSlots {
                            slots.store(slot + 1 + k, raw.load(fromByteOffset: k * 8, as: Int64.self))
                        }
                    }
                    slots.store(slot, hash)
                    return i
                }
                seen = found
            }
            // Another process is writing this entry's name: a few stores, so wait briefly
            // (bounded; a writer that died there leaves the entry unusable, not the table).
            var spins = 0
            while seen == -1 && spins < 10_000 { seen = slots.load(slot); spins += 1 }
            if seen == hash { return i }
            i = (i + 1) % table.capacity
        }
        return table.capacity
    }

    /// The names in a table, by index (nil for free or unfinished entries).
    public func names(_ table: NameTable) -> [String?] {
        (0..<table.capacity).map { i in
            let slot = table.base + i * NameTable.entrySlots
            guard slots.load(slot) > 0 else { return nil }
            var raw = [UInt8](repeating: 0, count: NameTable.nameSlots * 8)
            raw.withUnsafeMutableBytes { p in
                for k in 0..<NameTable.nameSlots { p.storeBytes(of: slots.load(slot + 1 + k), toByteOffset: k * 8, as: Int64.self) }
            }
            let end = raw.firstIndex(of: 0) ?? raw.count
            return String(decoding: raw[..<end], as: UTF8.self)
        }
    }
}
