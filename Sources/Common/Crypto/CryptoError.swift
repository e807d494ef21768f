internal import COpenSSL

/// A failure in an OpenSSL call, with OpenSSL's own first reason when it gave one.
public struct CryptoError: Error, CustomStringConvertible, Sendable {
    public let message: String

    /// Takes (and clears) OpenSSL's error queue: a failed verification leaves entries there,
    /// and a long-lived filter must not let them pile up.
    public init(_ message: String) {
        if let reason = OpenSSLErrors.drain() {
            self.message = "\(message) (\(reason))"
        } else {
            self.message = message
        }
    }

    public var description: String { message }
}

package enum OpenSSLErrors {
    /// The first queued error as text, and an empty queue afterwards.
    package static func drain() -> String? {
        let code = ERR_get_error()
        guard code != 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        ERR_clear_error()
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package static func clear() { ERR_clear_error() }
}

/// A memory BIO, the way PEM reading and writing talk to OpenSSL.
final class MemoryBIO {
    let pointer: OpaquePointer
    /// BIO_new_mem_buf does not copy, so the bytes live here for as long as the BIO.
    private let storage: UnsafeMutableRawBufferPointer?

    /// A read-only BIO over a copy of `bytes`.
    init(_ bytes: [UInt8]) throws(CryptoError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { src in
            if let base = src.baseAddress { copy.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
        }
        guard let bio = BIO_new_mem_buf(copy.baseAddress, Int32(bytes.count)) else {
            copy.deallocate()
            throw CryptoError("BIO_new_mem_buf failed")
        }
        pointer = bio
        storage = copy
    }

    /// An empty, writable BIO.
    init() throws(CryptoError) {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError("BIO_new failed") }
        pointer = bio
        storage = nil
    }

    /// Everything written so far.
    func contents() -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { BIO_read(pointer, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        return out
    }

    deinit {
        BIO_free(pointer)
        if let storage {
            // Key material may have passed through here.
            memsetZero(storage)
            storage.deallocate()
        }
    }
}

func memsetZero(_ buffer: UnsafeMutableRawBufferPointer) {
    if let base = buffer.baseAddress, buffer.count > 0 { OPENSSL_cleanse(base, buffer.count) }
}

/// An OpenSSL BIGNUM, freed (and cleared) with its owner.
final class BigNumber {
    let pointer: OpaquePointer

    init(_ bytes: [UInt8]) throws(CryptoError) {
        let bn = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        guard let bn else { throw CryptoError("BN_bin2bn failed") }
        pointer = bn
    }

    init(taking pointer: OpaquePointer) { self.pointer = pointer }

    /// Big-endian bytes, left-padded with zeros to `length` when given.
    func bytes(padTo length: Int? = nil) -> [UInt8] {
        let natural = Int((BN_num_bits(pointer) + 7) / 8)
        let count = max(length ?? natural, natural)
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBufferPointer { BN_bn2binpad(pointer, $0.baseAddress, Int32(count)) }
        return out
    }

    deinit { BN_clear_free(pointer) }
}
