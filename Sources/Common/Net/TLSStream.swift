#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
internal import COpenSSL
import Records
import Crypto

/// A client TLS session over a non-blocking socket (owned SSL_CTX and SSL).
package final class TLSStream {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    private let socket: StreamSocket

    /// Verifies the server against `caFile` when given (a private CA for internal
    /// services), else against the system store (`SSL_CERT_FILE` / `SSL_CERT_DIR`).
    package init(socket: StreamSocket, host: String, caFile: String? = nil, certificate: TLSClientCertificate? = nil,
                 deadline: Int) throws(NetError) {
        self.socket = socket
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw NetError("SSL_CTX_new failed") }
        guard let ssl = SSL_new(ctx) else { SSL_CTX_free(ctx); throw NetError("SSL_new failed") }
        context = ctx
        self.ssl = ssl
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        if let caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw NetError("cannot load CA file \(caFile): \(OpenSSLErrors.drain() ?? "unreadable")")
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(ctx) == 1 else { throw NetError("cannot load the system CA store") }
        }
        try certificate?.install(in: ssl)
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nil)
        var v4 = in_addr(), v6 = in6_addr()
        let isIP = inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
        if isIP {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { throw NetError("bad IP address") }
        } else {
            guard SSL_set1_host(ssl, host) == 1 else { throw NetError("bad host name") }
            _ = host.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
        }
        guard SSL_set_fd(ssl, socket.fd) == 1 else { throw NetError("SSL_set_fd failed") }
        while true {
            let rc = SSL_connect(ssl)
            if rc == 1 { break }
            try waitForSSL(rc, deadline: deadline, what: "TLS handshake")
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
        OpenSSLErrors.clear()
    }

    /// Waits when OpenSSL asks to; throws for real errors (including certificate failures).
    private func waitForSSL(_ rc: Int32, deadline: Int, what: String) throws(NetError) {
        let err = SSL_get_error(ssl, rc)
        switch err {
        case SSL_ERROR_WANT_READ:
            guard socket.wait(for: Int16(POLLIN), until: deadline) else { throw NetError("\(what) timed out") }
        case SSL_ERROR_WANT_WRITE:
            guard socket.wait(for: Int16(POLLOUT), until: deadline) else { throw NetError("\(what) timed out") }
        default:
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                let reason = String(cString: X509_verify_cert_error_string(verify))
                OpenSSLErrors.clear()
                throw NetError("\(what) failed: certificate \(reason)")
            }
            throw NetError("\(what) failed: \(OpenSSLErrors.drain() ?? "error \(err)")")
        }
    }

    /// False once the peer has closed without close_notify.
    package private(set) var closedCleanly = true

    /// Bytes read; 0 at the end of the stream.
    package func read(_ buffer: inout [UInt8], deadline: Int) throws(NetError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 { return Int(n) }
            let err = SSL_get_error(ssl, n)
            if err == SSL_ERROR_ZERO_RETURN { return 0 }
            if err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL {
                // Closed without close_notify (OpenSSL 3 reports it as an error), or broken:
                // an end, but one that may have cut the data short (see `closedCleanly`).
                OpenSSLErrors.clear()
                closedCleanly = false
                return 0
            }
            try waitForSSL(n, deadline: deadline, what: "TLS read")
        }
    }

    package func write(_ bytes: [UInt8], deadline: Int) throws(NetError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + offset, Int32($0.count - offset)) }
            if n > 0 { offset += Int(n); continue }
            try waitForSSL(n, deadline: deadline, what: "TLS write")
        }
    }
}
