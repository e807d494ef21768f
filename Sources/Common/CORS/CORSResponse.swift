import Records

/// The response side of CORS, applied by http-encode to every response whose request came
/// from an allowed origin (annotations.cors, set by route): Access-Control-Allow-Origin,
/// Vary: Origin, and credentials and exposed headers when configured. An upstream's own
/// Access-Control-* headers are replaced, or with upstream=keep left as they are when it
/// sent an Allow-Origin of its own.
public enum CORSResponse {
    public static func apply(to record: inout Record) {
        guard let notes = record.annotation(AnnotationKey.cors) else { return }
        var headers = record.headers
        apply(notes, to: &headers)
        record.headers = headers
    }

    /// The same on a response's header list (http-encode's, names lower-case or not).
    public static func apply(_ annotation: JSON?, to headers: inout [Header]) {
        guard case .object(let notes)? = annotation, case .string(let origin)? = notes["origin"] else { return }
        let keep = notes["upstream"]?.string == "keep"
        if keep && headers.contains(where: { $0.name.lowercased() == "access-control-allow-origin" }) { return }
        headers.removeAll { $0.name.lowercased().hasPrefix("access-control-") }
        headers.append(Header("access-control-allow-origin", origin))
        if notes["credentials"] == .bool(true) { headers.append(Header("access-control-allow-credentials", "true")) }
        if case .string(let expose)? = notes["expose"] { headers.append(Header("access-control-expose-headers", expose)) }
        if let i = headers.firstIndex(where: { $0.name.lowercased() == "vary" }) {
            let present = headers[i].value.split(separator: ",").contains {
                let t = $0.filter { $0 != " " }.lowercased()
                return t == "origin" || t == "*"
            }
            if !present { headers[i].value += ", Origin" }
        } else {
            headers.append(Header("vary", "Origin"))
        }
    }
}
