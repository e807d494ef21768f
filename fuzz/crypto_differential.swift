// The hand-written cryptography against OpenSSL's own high-level functions
// (Sources/Common/Crypto: RSAPublicNumbers' encode-and-compare RSASSA-PKCS1-v1_5 and
// Digest's HMAC over the low-level SHA-256; the references are OpenSSLReference's
// EVP_DigestVerify, HMAC() and SHA256()).
//
// Input: byte 0 picks the check, the rest drives it. Properties:
//   - HMAC-SHA256 and SHA-256 equal OpenSSL's for every key length (empty, shorter than,
//     equal to and longer than the 64-byte block) and every message;
//   - RS256/384/512 verification agrees with EVP_DigestVerify on random keys (fresh key
//     pairs of 2048 (two) and 3072 bits made at start), random messages, and signatures
//     that are valid, bit-flipped, truncated, extended, replaced by input bytes, made for
//     another message, made with another hash, or at least the modulus;
//   - a valid signature verifies on both.
@testable import Records
@testable import Crypto

nonisolated(unsafe) private let keys: [(PrivateKey, PublicKey)] = [2048, 2048, 3072].map { bits in
    let key = try! PrivateKey.generateRSA(bits: bits)
    return (key, try! key.publicKey())
}
private let algorithms: [SignatureAlgorithm] = [.rs256, .rs384, .rs512]
nonisolated(unsafe) private let verifiers: [[SignatureVerifier]] = keys.map { pair in
    algorithms.map { try! SignatureVerifier(key: pair.1, algorithm: $0) }
}

/// Key generation takes seconds: done before the first input, so it does not count as one.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = verifiers.count
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let choice = input.first else { return 0 }
    let rest = Array(input.dropFirst())
    if choice & 1 == 0 {
        checkDigests(rest)
    } else {
        checkPKCS1(rest)
    }
    return 0
}

private func checkDigests(_ bytes: [UInt8]) {
    // The first byte is the key's length, so keys around the block size come up often.
    let keyLength = min(Int(bytes.first ?? 0), max(bytes.count - 1, 0))
    let key = Array(bytes.dropFirst().prefix(keyLength))
    let message = Array(bytes.dropFirst(1 + keyLength))
    require(Digest.hmacSHA256(key: key, message) == OpenSSLReference.hmacSHA256(key: key, message),
            "HMAC differs for a \(key.count)-byte key and a \(message.count)-byte message")
    require(Digest.sha256(message) == OpenSSLReference.sha256(message), "SHA-256 differs for \(message.count) bytes")
}

private func checkPKCS1(_ bytes: [UInt8]) {
    guard bytes.count >= 3 else { return }
    let k = Int(bytes[0]) % keys.count
    let a = Int(bytes[1]) % algorithms.count
    let mutation = bytes[2]
    let payload = Array(bytes.dropFirst(3))
    let (privateKey, publicKey) = keys[k]
    let algorithm = algorithms[a]
    var message = payload
    var signature = try! privateKey.sign(message, algorithm: algorithm)
    let width = signature.count
    var rng = SplitMix64(seed: UInt64(mutation) &* 0x9e37_79b9 &+ UInt64(payload.count))
    switch mutation % 9 {
    case 0:
        break
    case 1:
        let bit = rng.below(width * 8)
        signature[bit / 8] ^= UInt8(1 << (bit % 8))
    case 2:
        signature.removeLast(1 + rng.below(width))
    case 3:
        signature.append(UInt8(truncatingIfNeeded: rng.next()))
    case 4:
        // The input's own bytes, cycled to the modulus's width.
        signature = (0..<width).map { payload.isEmpty ? UInt8(truncatingIfNeeded: $0) : payload[$0 % payload.count] }
    case 5:
        message.append(mutation)
    case 6:
        signature = try! privateKey.sign(message, algorithm: algorithms[(a + 1) % algorithms.count])
    case 7:
        signature = [UInt8](repeating: 0xFF, count: width)
    default:
        signature = [UInt8](repeating: 0, count: width)
    }
    let ours = verifiers[k][a].verify(message, signature: signature)
    let reference = OpenSSLReference.verifyPKCS1(key: publicKey, algorithm: algorithm, message: message, signature: signature)
    require(ours == reference, "\(algorithm.rawValue) with a \(width * 8)-bit key, mutation \(mutation % 9): ours \(ours), OpenSSL \(reference)")
    if mutation % 9 == 0 { require(ours, "a valid \(algorithm.rawValue) signature was refused") }
}
