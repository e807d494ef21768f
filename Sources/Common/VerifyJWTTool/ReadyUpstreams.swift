import Records
import Net

/// The upstreams check of /readyz, apart from everything else: the upstreams file of the
/// `forward` filter, read by the same reader (`UpstreamTable`, so a file `forward --check`
/// refuses fails here too, naming FILE:LINE), and of each upstream the question whether at
/// least one of its addresses accepts a connection within its connect-timeout.
enum ReadyUpstreams {
    /// The upstreams of a file, or why it cannot be read ("FILE:LINE: reason").
    static func load(_ file: String) -> Result<[Upstream], ReadinessFailure> {
        do throws(ConfigError) {
            return .success(try UpstreamTable.load(path: file).upstreams)
        } catch {
            return .failure(ReadinessFailure(error.report(file: file)))
        }
    }

    /// nil when every upstream has an address that accepts a connection; else the first
    /// that has none, with the reason.
    static func problem(_ upstreams: [Upstream]) -> String? {
        for upstream in upstreams {
            var last = ""
            var up = false
            for endpoint in upstream.endpoints {
                let why: String?
                switch endpoint.kind {
                case .tcp(let host, let port), .tls(let host, let port):
                    why = ConnectProbe.tcp(host: host, port: port, timeoutMillis: upstream.connectTimeoutMillis)
                case .unix(let path):
                    why = ConnectProbe.unix(path: path, timeoutMillis: upstream.connectTimeoutMillis)
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
