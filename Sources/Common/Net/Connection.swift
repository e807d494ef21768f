/// Where a connection goes: a TCP host and port, or a Unix-domain socket path.
package enum Endpoint: Equatable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    package var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// What a TLS client checks: the name the certificate must carry (also sent as SNI), and
/// the CA that must have signed it (nil: the system store); and the certificate it shows
/// when the server asks for one.
package struct TLSSettings: Equatable, Sendable {
    package var serverName: String
    package var caFile: String?
    package var clientCertificate: TLSClientCertificate?

    package init(serverName: String, caFile: String? = nil, clientCertificate: TLSClientCertificate? = nil) {
        self.serverName = serverName
        self.caFile = caFile
        self.clientCertificate = clientCertificate
    }
}

/// One client connection, plain or TLS, over TCP or a Unix socket: the one place that
/// chooses between the transports, so the clients above (key-set fetches, Redis,
/// forwarding) read and write without knowing which it is.
package final class Connection {
    package let socket: StreamSocket
    private let tls: TLSStream?

    private init(socket: StreamSocket, tls: TLSStream?) {
        self.socket = socket
        self.tls = tls
    }

    /// Connects and, with `tls`, completes the handshake, all before `deadline`.
    package static func open(_ endpoint: Endpoint, tls settings: TLSSettings? = nil, deadline: Int) throws(NetError) -> Connection {
        let socket: StreamSocket
        switch endpoint {
        case .tcp(let host, let port): socket = try StreamSocket.connect(host: host, port: port, deadline: deadline)
        case .unix(let path): socket = try StreamSocket.connect(unixPath: path, deadline: deadline)
        }
        guard let settings else { return Connection(socket: socket, tls: nil) }
        let tls = try TLSStream(socket: socket, host: settings.serverName, caFile: settings.caFile,
                                certificate: settings.clientCertificate, deadline: deadline)
        return Connection(socket: socket, tls: tls)
    }

    package var fd: Int32 { socket.fd }

    /// False once a TLS peer has closed without close_notify: data delimited by the close
    /// may have been cut short.
    package var closedCleanly: Bool { tls?.closedCleanly ?? true }

    /// Bytes read; 0 at the end of the stream.
    package func read(_ buffer: inout [UInt8], deadline: Int) throws(NetError) -> Int {
        if let tls { return try tls.read(&buffer, deadline: deadline) }
        return try socket.read(&buffer, deadline: deadline)
    }

    package func write(_ bytes: [UInt8], deadline: Int) throws(NetError) {
        if let tls { try tls.write(bytes, deadline: deadline) } else { try socket.write(bytes, deadline: deadline) }
    }
}
