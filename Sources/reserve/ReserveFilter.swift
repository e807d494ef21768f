import Records
import KV

/// The HTTP face of the reservation service: which request is which, what each outcome
/// answers, and the audit annotation every reservation event carries.
struct ReserveFilter {
    enum Action: String, CaseIterable {
        case page = "reserve-page"
        case submit = "reserve-submit"
        case confirm = "reserve-confirm"
        case list = "reserve-list"

        /// The audit annotation's `action`.
        var event: String {
            switch self {
            case .page: return "page"
            case .submit: return "submit"
            case .confirm: return "confirm"
            case .list: return "list"
            }
        }
    }

    /// nil when the store could not be opened: every reservation request is then a 503.
    let reservations: Reservations?
    let storeProblem: String
    /// The HTML page; nil when none is configured (GET / is then a 404).
    let page: [UInt8]?
    /// The uids allowed to list reservations.
    let admins: Set<String>

    /// The route table names the request (annotations.route.name). Without a route
    /// annotation the filter matches the four endpoints itself, so it also works alone.
    static func action(for record: Record) -> Action? {
        if let route = record.annotation(AnnotationKey.route) {
            return route["name"]?.string.flatMap(Action.init(rawValue:))
        }
        switch (record.method, record.path) {
        case ("GET", "/"), ("HEAD", "/"): return .page
        case ("POST", "/v1/reservations"): return .submit
        case ("POST", "/v1/reservations/confirm"): return .confirm
        case ("GET", "/v1/reservations"), ("HEAD", "/v1/reservations"): return .list
        default: return nil
        }
    }

    func handle(_ record: inout Record) {
        guard let action = Self.action(for: record) else { return }
        if action == .page {
            record = pageResponse(record)
            return
        }
        record = respond(to: record, action)
        // Refusals made before the reservation logic ran (unreadable body, store down,
        // no uid) are reservation events too: the trail shows every answer.
        if record.annotation(AnnotationKey.audit) == nil {
            let code = (try? JSONReader.parse(record.body))?["error"]?.string ?? "error"
            record.setAnnotation(AnnotationKey.audit, ["kind": "reservation", "action": .string(action.event),
                                                       "outcome": .string(code)])
        }
    }

    private func respond(to record: Record, _ action: Action) -> Record {
        guard let reservations else {
            Log.error("reservation store unavailable: \(storeProblem)")
            return record.errorResponse(status: 503, error: "unavailable", message: "the reservation store is unavailable",
                                        headers: [Header("retry-after", "5")])
        }
        do throws(KVError) {
            switch action {
            case .page:
                return pageResponse(record)
            case .submit, .confirm:
                let fields: [String: String?]
                do throws(InputError) {
                    fields = try FormInput.fields(body: record.body, contentType: record.header("content-type"))
                } catch {
                    if let field = error.field {
                        return answer(record, .invalid(FieldError(field: field, message: error.message)), Reservations.Subject(),
                                      action: action.event)
                    }
                    return record.errorResponse(status: error.status, error: error.code, message: error.message)
                }
                let (outcome, subject) = action == .submit
                    ? try reservations.submit(subdomain: fields["subdomain"], email: fields["email"])
                    : try reservations.confirm(token: fields["token"])
                return answer(record, outcome, subject, action: action.event)
            case .list:
                return try listResponse(record, reservations)
            }
        } catch .invalidCursor {
            return record.errorResponse(status: 400, error: "bad_request", message: "the cursor is not one this service issued")
        } catch {
            Log.error("reservation store: \(error)")
            return record.errorResponse(status: 503, error: "unavailable", message: "the reservation store is unavailable; try again",
                                        headers: [Header("retry-after", "5")])
        }
    }

    // MARK: Answers

    func answer(_ request: Record, _ outcome: Outcome, _ subject: Reservations.Subject, action: String) -> Record {
        var response: Record
        let name: String
        switch outcome {
        case .verificationSent:
            name = "verification_sent"
            response = request.jsonResponse(status: 202, ["status": "verification_sent"])
        case .invalid(let e):
            name = "invalid"
            response = request.errorResponse(status: 422, error: "invalid_field", message: e.message,
                                             details: JSONObject([("field", .string(e.field))]))
        case .blocked(let rule):
            name = "blocked"
            let reason = rule.isPattern ? "the subdomain matches a blocked pattern" : "the subdomain is reserved"
            response = request.errorResponse(status: 403, error: "blocked", message: "this subdomain cannot be reserved",
                                             details: JSONObject([("field", "subdomain"), ("reason", .string(reason))]))
        case .taken(let field):
            name = "taken"
            let message = field == "subdomain" ? "this subdomain is already reserved"
                                               : "this email address already holds a reservation"
            response = request.errorResponse(status: 409, error: "taken", message: message,
                                             details: JSONObject([("field", .string(field))]))
        case .confirmed:
            name = "confirmed"
            response = request.jsonResponse(status: 201, ["status": "confirmed",
                                                          "subdomain": subject.subdomain.map(JSON.string) ?? .null,
                                                          "email": subject.email.map(JSON.string) ?? .null])
        case .alreadyYours:
            name = "already_yours"
            response = request.jsonResponse(status: 200, ["status": "already_yours",
                                                          "message": "this name is already yours",
                                                          "subdomain": subject.subdomain.map(JSON.string) ?? .null,
                                                          "email": subject.email.map(JSON.string) ?? .null])
        case .tokenUsed:
            name = "token_used"
            response = request.errorResponse(status: 410, error: "token_used", message: "this confirmation link has already been used")
        case .tokenExpired:
            name = "token_expired"
            response = request.errorResponse(status: 410, error: "token_expired",
                                             message: "this confirmation link has expired; ask for a new one")
        case .mailFailed(let why):
            name = "mail_failed"
            Log.error("verification mail not sent: \(why)")
            response = request.errorResponse(status: 503, error: "mail_unavailable",
                                             message: "the verification mail could not be sent; try again later",
                                             headers: [Header("retry-after", "30")])
        }
        var note = JSONObject([("kind", "reservation"), ("action", .string(action)), ("outcome", .string(name))])
        note["subdomain"] = subject.subdomain.map { .string(Self.clip($0)) } ?? .null
        note["email"] = subject.email.map { .string(Self.clip($0)) } ?? .null
        if case .taken(let field) = outcome { note["field"] = .string(field) }
        if case .invalid(let e) = outcome { note["field"] = .string(e.field) }
        if case .blocked(let rule) = outcome { note["rule"] = .string(rule.text) }
        response.setAnnotation(AnnotationKey.audit, .object(note))
        return response
    }

    /// Refused input goes to the audit log too, but a few hundred bytes of it is enough:
    /// at most `limit` bytes, cut before a character that would not fit whole (a cut inside
    /// one would decode as U+FFFD, three bytes, and push the field past the limit).
    static func clip(_ s: String, limit: Int = 254) -> String {
        let bytes = Array(s.utf8)
        guard bytes.count > limit else { return s }
        var end = limit
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }   // a continuation byte: mid-character
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    func pageResponse(_ request: Record) -> Record {
        guard let page else {
            return request.errorResponse(status: 404, error: "not_found", message: "no page is configured")
        }
        // The confirmation link carries the token in the query: no Referer may leak it,
        // and no cache may keep it.
        return request.response(status: 200, headers: [
            Header("content-type", "text/html; charset=utf-8"),
            Header("cache-control", "no-store"),
            Header("referrer-policy", "no-referrer"),
            Header("x-content-type-options", "nosniff"),
            Header("x-frame-options", "DENY"),
        ], body: page)
    }

    /// Administrators only: the uid verify-jwt established (annotations.auth.uid). The
    /// x-authenticated-uid header alone is not trusted, since a client can send it; when
    /// present it must agree with the annotation, which only a filter can write.
    func listResponse(_ request: Record, _ reservations: Reservations) throws(KVError) -> Record {
        let uid = request.annotation(AnnotationKey.auth)?["uid"]?.string
        let header = request.header("x-authenticated-uid")
        guard let uid, !uid.isEmpty, header == nil || header == uid else {
            return request.errorResponse(status: 401, error: "unauthenticated", message: "sign in as an administrator",
                                         headers: [Header("www-authenticate", "Bearer")])
        }
        guard admins.contains(uid) else {
            var r = request.errorResponse(status: 403, error: "forbidden", message: "only administrators may list reservations")
            r.setAnnotation(AnnotationKey.audit, ["kind": "reservation", "action": "list", "outcome": "denied", "uid": .string(uid)])
            return r
        }
        let query: [String: String?]
        do throws(InputError) { query = try FormInput.query(request.query) } catch {
            return request.errorResponse(status: 400, error: "bad_request", message: error.message)
        }
        var limit = 50
        if let text = query["limit"] {
            guard let text, let n = Int(text), (1...1000).contains(n) else {
                return request.errorResponse(status: 400, error: "bad_request", message: "limit must be an integer from 1 to 1000")
            }
            limit = n
        }
        var cursor: String?
        if let text = query["cursor"] {
            guard let text else { return request.errorResponse(status: 400, error: "bad_request", message: "give one cursor") }
            cursor = text.isEmpty ? nil : text
        }
        let page = try reservations.list(limit: limit, cursor: cursor)
        var r = request.jsonResponse(status: 200, ["reservations": .array(page.reservations),
                                                   "next_cursor": page.next.map(JSON.string) ?? .null])
        r.setAnnotation(AnnotationKey.audit, ["kind": "reservation", "action": "list", "outcome": "listed", "uid": .string(uid),
                                              "count": JSON(page.reservations.count)])
        return r
    }
}
