import Records
import CORS

/// route's part of CORS: the route name of a preflight is the one its requested method
/// would reach, so the table is asked with that method, not with OPTIONS.
final class CORSStep {
    let policy: CORSPolicy
    let table: RouteTable

    init(policy: CORSPolicy, table: RouteTable) {
        self.policy = policy
        self.table = table
    }

    /// Returns true when it answered the record (a preflight).
    func handle(_ record: inout Record, method: String, path: String, match: RouteMatch) -> Bool {
        guard let origin = record.header("origin") else { return false }
        if method == "OPTIONS", let requested = record.header("access-control-request-method") {
            // A path or method the table does not route falls through to route's own answer
            // (404, 405), which carries no CORS headers: the browser refuses it either way.
            guard case .matched(let route, _) = table.match(method: requested, path: path) else { return false }
            switch policy.preflight(origin: origin, method: requested,
                                    requestHeaders: record.header("access-control-request-headers"), route: route.name) {
            case .allowed(let headers):
                record = record.response(status: 204, headers: headers)
            case .refused(let reason):
                record = record.errorResponse(status: 403, error: "cors_forbidden", message: reason,
                                              headers: [Header("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")])
            }
            return true
        }
        var name: String?
        if case .matched(let route, _) = match { name = route.name }
        if let notes = policy.annotation(origin: origin, route: name) { record.setAnnotation(AnnotationKey.cors, notes) }
        return false
    }
}
