import Records
import CORS

/// Applies the table to one request record: annotates it for the filters downstream, or
/// answers it (fixed answers, 404, 405, OPTIONS, 410, 400 for a refused path).
struct RouteFilter {
    let table: RouteTable
    /// Puts an audit entry on 410 answers, for the audit filter to record.
    let auditGone: Bool
    /// With a CORS file: preflights answered here, before any token check, and
    /// annotations.cors put on requests from allowed origins. A class reference: an
    /// optional `CORSPolicy` held here was copied at start through Optional's generic metadata.
    let cors: CORSStep?

    init(table: RouteTable, auditGone: Bool = false, cors: CORSPolicy? = nil) {
        self.table = table
        self.auditGone = auditGone
        self.cors = cors.map { CORSStep(policy: $0, table: table) }
    }

    func handle(_ record: inout Record) throws {
        guard let method = record["method"]?.string, !method.isEmpty, let path = record["path"]?.string else {
            throw FilterError(status: 400, code: "bad_record", message: "a request record needs string fields method and path")
        }
        let match = table.match(method: method, path: path)
        if let cors, cors.handle(&record, method: method, path: path, match: match) {
            return
        }
        switch match {
        case .matched(let route, let params):
            if let name = route.name {
                var p = JSONObject()
                p.members.reserveCapacity(params.count)
                for (k, v) in params { p.members.append(.init(k, .string(v))) }
                // Members, not (key, value) pairs: an array of tuples costs generic-metadata work at start.
                record.setAnnotation(AnnotationKey.route, .object(JSONObject([.init("name", .string(name)), .init("params", .object(p))])))
            }
            switch route.action {
            case .forward:
                break
            case .respond(let status, let body):
                record = record.response(status: status,
                                         headers: body.isEmpty ? [] : [Header("content-type", "application/json")],
                                         body: body)
            case .gone(let removed, let replacement):
                record = gone(record, path: path, removed: removed, replacement: replacement)
            }
        case .notFound:
            record = record.errorResponse(status: 404, error: "not_found", message: "no route for \(clip(path))")
        case .methodNotAllowed(let allow):
            record = record.errorResponse(status: 405, error: "method_not_allowed",
                                          message: "\(clip(method, 20)) is not allowed on \(clip(path))",
                                          headers: [Header("allow", allow.joined(separator: ", "))])
        case .options(let allow):
            record = record.response(status: 204, headers: [Header("allow", allow.joined(separator: ", "))])
        case .badPath(let reason):
            record = record.errorResponse(status: 400, error: "bad_path", message: reason)
        }
    }

    private func gone(_ request: Record, path: String, removed: String, replacement: String?) -> Record {
        var request = request
        if auditGone {
            request.setAnnotation(AnnotationKey.audit, .object(JSONObject([
                ("kind", "gone"), ("path", .string(path)), ("outcome", "gone"),
            ])))
        }
        var message = "\(clip(path)) was removed on \(removed)"
        var headers: [Header] = []
        if let replacement {
            message += "; use \(replacement) instead"
            headers.append(Header("link", "<\(replacement)>; rel=\"successor-version\""))
        }
        return request.errorResponse(status: 410, error: "gone", message: message, headers: headers,
                                     details: JSONObject([("removed_at", .string(removed)),
                                                          ("replacement", replacement.map(JSON.string) ?? .null)]))
    }
}
