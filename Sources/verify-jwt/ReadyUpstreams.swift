import Records
import Net

/// The upstreams check of /readyz, apart from everything else: it reads the upstreams file
/// of the `forward` filter (issue 16: `NAME URL [URL...] [options]`, URLs http://, https://
/// or unix:PATH, options KEY=VALUE) only for the addresses, and asks of each upstream that
/// at least one address accepts a connection. It does not check the file the way `forward
/// --check` does; a line it cannot read is reported as failing, so a broken file is not
/// taken for a healthy one.
struct ReadyUpstreams {
    enum Address: Equatable {
        case tcp(host: String, port: Int)
        case unix(String)
    }

    struct Upstream: Equatable {
        var name: String
        var addresses: [Address]
        var connectTimeoutMillis = 500
    }

    /// The upstreams of a file's text, or the first line that cannot be read ("FILE:LINE: reason").
    static func parse(_ text: String, file: String) -> Result<[Upstream], ReadinessFailure> {
        var upstreams: [Upstream] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let name = fields.first else { continue }
            var upstream = Upstream(name: String(name), addresses: [])
            for field in fields.dropFirst() {
                if field.hasPrefix("unix:") {
                    upstream.addresses.append(.unix(String(field.dropFirst(5))))
                } else if field.contains("://") {
                    guard let url = FetchURL.parse(String(field)) else {
                        return .failure(ReadinessFailure("\(file):\(n + 1): cannot read the URL \(field)"))
                    }
                    upstream.addresses.append(.tcp(host: url.host, port: url.port))
                } else if field.hasPrefix("connect-timeout="), let ms = Int(field.dropFirst(16)), ms > 0 {
                    upstream.connectTimeoutMillis = ms
                }
            }
            if upstream.addresses.isEmpty { return .failure(ReadinessFailure("\(file):\(n + 1): no URL for \(name)")) }
            upstreams.append(upstream)
        }
        return .success(upstreams)
    }

    /// nil when every upstream has an address that accepts a connection; else the first
    /// that has none, with the reason.
    static func problem(_ upstreams: [Upstream]) -> String? {
        for upstream in upstreams {
            var last = ""
            var up = false
            for address in upstream.addresses {
                let why: String?
                switch address {
                case .tcp(let host, let port): why = ConnectProbe.tcp(host: host, port: port, timeoutMillis: upstream.connectTimeoutMillis)
                case .unix(let path): why = ConnectProbe.unix(path: path, timeoutMillis: upstream.connectTimeoutMillis)
                }
                if let why { last = why } else { up = true; break }
            }
            if !up { return "upstream \(upstream.name): no address accepts connections (\(last))" }
        }
        return nil
    }
}

struct ReadinessFailure: Error, Equatable {
    let message: String
    init(_ message: String) { self.message = message }
}
