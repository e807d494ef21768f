import Records
/// Whether an address accepts connections now: a connect within `timeoutMillis`, then a
/// close (nothing sent). For readiness checks of upstreams.
public enum ConnectProbe {
    /// nil when `host:port` accepted a TCP connection, else why not.
    public static func tcp(host: String, port: Int, timeoutMillis: Int) -> String? {
        do {
            _ = try StreamSocket.connect(host: host, port: port, deadline: Clock.monotonicMillis() + timeoutMillis)
            return nil
        } catch {
            return error.description
        }
    }

    /// nil when the Unix socket at `path` accepted a connection, else why not.
    public static func unix(path: String, timeoutMillis: Int) -> String? {
        do {
            _ = try StreamSocket.connect(unixPath: path, deadline: Clock.monotonicMillis() + timeoutMillis)
            return nil
        } catch {
            return error.description
        }
    }
}
