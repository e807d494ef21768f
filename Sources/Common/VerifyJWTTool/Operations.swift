import Records
import KV
import SharedMemory

/// The operator's routes, answered by verify-jwt because it is in every pipeline (full,
/// read and write) and holds the key store the readiness check needs, so neither route
/// costs the read path an extra process hand-off. Both need no token.
///   metrics  GET: the Prometheus text of the machine's metrics file, to clients inside
///            the allow list (EDGEPIPE_METRICS_ALLOW; default loopback and the trusted
///            proxies), 403 to others.
///   readyz   GET: 200 {"status":"ready","checks":{...}} or 503 naming the failing checks.
struct OperationsSettings {
    var metricsRoute = "metrics"
    var readyRoute = "readyz"
    var metricsAllow: [CIDR] = []

    static let loopback = ["127.0.0.0/8", "::1"]

    /// EDGEPIPE_METRICS_ALLOW (comma-separated CIDRs) or the default: loopback and
    /// EDGEPIPE_TRUSTED_PROXIES.
    static func allowList(_ env: (String) -> String?) throws(CIDRError) -> [CIDR] {
        func split(_ s: String) -> [String] {
            s.split(separator: ",").map { String($0.trimmingSpacesAndTabs()) }.filter { !$0.isEmpty }
        }
        let specs = env("EDGEPIPE_METRICS_ALLOW").map(split) ?? (loopback + split(env("EDGEPIPE_TRUSTED_PROXIES") ?? ""))
        var out: [CIDR] = []
        for spec in specs { out.append(try CIDR(parsing: spec)) }
        return out
    }
}

final class Operations {
    let settings: OperationsSettings
    let readiness: Readiness
    let metrics: Metrics?

    init(settings: OperationsSettings, readiness: Readiness, metrics: Metrics? = Metrics.shared) {
        self.settings = settings
        self.readiness = readiness
        self.metrics = metrics
    }

    /// Answers the record when it is one of these routes; returns whether it did.
    func handle(_ record: inout Record, route: String?) -> Bool {
        guard let route, route == settings.metricsRoute || route == settings.readyRoute else { return false }
        if route == settings.readyRoute {
            record = readiness.respond(to: record)
            return true
        }
        guard let remote = record.remote.flatMap({ IPAddress($0) }), settings.metricsAllow.contains(where: { $0.contains(remote) }) else {
            record = record.errorResponse(status: 403, error: "forbidden",
                                          message: "metrics are served to the addresses in EDGEPIPE_METRICS_ALLOW only")
            return true
        }
        guard let metrics else {
            record = record.errorResponse(status: 503, error: "metrics_off", message: "metrics are off (EDGEPIPE_METRICS=off) or their file cannot be opened")
            return true
        }
        let text = PrometheusText.render(metrics, now: Int64(Clock.now()))
        record = record.response(status: 200, headers: [Header("content-type", PrometheusText.contentType),
                                                        Header("cache-control", "no-store")],
                                 body: Array(text.utf8))
        return true
    }
}
