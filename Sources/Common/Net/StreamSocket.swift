#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// A connected, non-blocking stream socket (TCP, or a Unix-domain path), closed with its
/// owner. Every client reaches it through `Connection`, which adds TLS when asked.
package final class StreamSocket {
    package let fd: Int32

    private init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }

    package static func connect(host: String, port: Int, deadline: Int) throws(NetError) -> StreamSocket {
        var lastError = "cannot resolve \(host)"
        for address in try resolve(host: host, port: port) {
            let fd = socket(Int32(address.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            let sock = StreamSocket(fd: fd)
            let rc = address.storage.withUnsafeBytes { raw in
                Glibc.connect(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length)
            }
            if rc != 0 && errno != EINPROGRESS {
                lastError = "connect: \(errnoText(errno))"
                continue
            }
            if rc != 0 {
                guard sock.wait(for: Int16(POLLOUT), until: deadline) else { throw NetError("connect timed out") }
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 { lastError = "connect: \(errnoText(err))"; continue }
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            return sock
        }
        throw NetError(lastError)
    }

    package static func connect(unixPath path: String, deadline: Int) throws(NetError) -> StreamSocket {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw NetError("socket: \(errnoText(errno))") }
        let sock = StreamSocket(fd: fd)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw NetError("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            // A full listen backlog answers EAGAIN on a Unix socket; wait for it like a TCP connect.
            guard errno == EAGAIN || errno == EINPROGRESS else { throw NetError("connect: \(errnoText(errno))") }
            guard sock.wait(for: Int16(POLLOUT), until: deadline) else { throw NetError("connect timed out") }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { throw NetError("connect: \(errnoText(err))") }
        }
        return sock
    }

    struct Address {
        var family: Int32
        var storage: [UInt8]
        var length: socklen_t
    }

    /// IP literals and localhost never touch the resolver (a static binary's NSS is best avoided).
    static func resolve(host: String, port: Int) throws(NetError) -> [Address] {
        var v4 = in_addr()
        let literal4 = host == "localhost" ? "127.0.0.1" : host
        if inet_pton(AF_INET, literal4, &v4) == 1 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = in_port_t(UInt16(port).bigEndian)
            sa.sin_addr = v4
            return [Address(family: AF_INET, storage: withUnsafeBytes(of: sa) { Array($0) }, length: socklen_t(MemoryLayout<sockaddr_in>.size))]
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = in_port_t(UInt16(port).bigEndian)
            sa.sin6_addr = v6
            return [Address(family: AF_INET6, storage: withUnsafeBytes(of: sa) { Array($0) }, length: socklen_t(MemoryLayout<sockaddr_in6>.size))]
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &result)
        guard rc == 0, let first = result else { throw NetError("cannot resolve \(host)") }
        defer { freeaddrinfo(first) }
        var out: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr {
                let bytes = Array(UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                out.append(Address(family: ai.pointee.ai_family, storage: bytes, length: ai.pointee.ai_addrlen))
            }
            cursor = ai.pointee.ai_next
        }
        return out
    }

    /// Waits until the socket is ready for `events`; false at the deadline.
    package func wait(for events: Int16, until deadline: Int) -> Bool {
        while true {
            let remaining = deadline - Clock.monotonicMillis()
            if remaining <= 0 { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min(remaining, Int(Int32.max))))
            if rc > 0 { return true }
            if rc == 0 { return false }
            if errno != EINTR { return true }   // let the next read or write report the error
        }
    }

    package func read(_ buffer: inout [UInt8], deadline: Int) throws(NetError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                guard wait(for: Int16(POLLIN), until: deadline) else { throw NetError("read timed out") }
                continue
            }
            throw NetError("read: \(errnoText(errno))")
        }
    }

    package func write(_ bytes: [UInt8], deadline: Int) throws(NetError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                guard wait(for: Int16(POLLOUT), until: deadline) else { throw NetError("write timed out") }
                continue
            }
            throw NetError("write: \(errnoText(errno))")
        }
    }
}
