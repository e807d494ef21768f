/// `String(validating: bytes, as: UTF8.self)`, with a fast path for ASCII (nearly every
/// input). The standard library's validating initialiser runs its generic code
/// unspecialised: about 1.5 k instructions a call, 30 k for route's table, paid at the
/// start of every filter process.
public func validUTF8String(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
    for b in bytes where b >= 0x80 { return String(validating: bytes, as: UTF8.self) }
    return String(decoding: bytes, as: UTF8.self)
}

public func validUTF8String(_ bytes: [UInt8]) -> String? {
    bytes.withUnsafeBufferPointer { validUTF8String($0) }
}

public func validUTF8String(_ bytes: ArraySlice<UInt8>) -> String? {
    bytes.withUnsafeBufferPointer { validUTF8String($0) }
}
