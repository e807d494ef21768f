#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
internal import COpenSSL
import Crypto

/// A certificate a TLS client presents when the server asks for one (mutual TLS, as Redis
/// does with `tls-auth-clients yes`). Paths, not contents: the key stays in its file, read
/// by OpenSSL at handshake time, and never passes through argv or the environment.
public struct TLSClientCertificate: Equatable, Sendable {
    /// PEM: the certificate, then any intermediates the server needs to build the chain.
    public var certificateFile: String
    /// PEM private key matching the certificate (unencrypted).
    public var keyFile: String

    public init(certificateFile: String, keyFile: String) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// Loads both files into the session `ssl` (not its context: a session copies the
    /// context's certificate when it is created), failing when either is unreadable or they
    /// do not match.
    func install(in ssl: OpaquePointer) throws(NetError) {
        guard SSL_use_certificate_chain_file(ssl, certificateFile) == 1 else {
            throw NetError("cannot load the client certificate \(certificateFile): \(OpenSSLErrors.drain() ?? "unreadable")")
        }
        guard SSL_use_PrivateKey_file(ssl, keyFile, SSL_FILETYPE_PEM) == 1 else {
            // OpenSSL checks here that the key matches the certificate ("key values mismatch").
            throw NetError("cannot load the client key \(keyFile): \(OpenSSLErrors.drain() ?? "unreadable")")
        }
        guard SSL_check_private_key(ssl) == 1 else {
            OpenSSLErrors.clear()
            throw NetError("the client key \(keyFile) does not match the certificate \(certificateFile)")
        }
    }
}
