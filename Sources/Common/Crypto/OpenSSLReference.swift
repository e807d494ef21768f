internal import COpenSSL

/// OpenSSL's own high-level answers for what this module computes by hand (RSASSA-PKCS1-v1_5
/// by encode-and-compare on the key's numbers, HMAC over the low-level SHA-256): the
/// references the differential fuzz target (`fuzz/run crypto`) and the unit tests hold the
/// fast paths to. Never on a request path: EVP_DigestVerify and HMAC() fetch from a provider,
/// which is the start-up cost the fast paths exist to avoid.
package enum OpenSSLReference {
    /// EVP_DigestVerify with PKCS#1 v1.5 padding on the key's EVP_PKEY.
    package static func verifyPKCS1(key: PublicKey, algorithm: SignatureAlgorithm, message: [UInt8], signature: [UInt8]) -> Bool {
        guard algorithm.isPKCS1, let pkey = try? key.evpKey(), let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx); ERR_clear_error() }
        var pctx: OpaquePointer?
        guard EVP_DigestVerifyInit(ctx, &pctx, algorithm.evpDigest, nil, pkey) == 1,
              let pctx, EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 else { return false }
        let rc = signature.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                EVP_DigestVerify(ctx, sig.baseAddress, sig.count, msg.baseAddress, msg.count)
            }
        }
        return rc == 1
    }

    /// HMAC() with EVP_sha256().
    package static func hmacSHA256(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        // A buffer, never a nil pointer, for an empty key: HMAC() reads a NULL key as "reuse".
        let keyBuffer = key.isEmpty ? [0] : key
        out.withUnsafeMutableBufferPointer { o in
            keyBuffer.withUnsafeBufferPointer { k in
                data.withUnsafeBufferPointer { d in
                    _ = HMAC(EVP_sha256(), k.baseAddress, Int32(key.count), d.baseAddress, d.count, o.baseAddress, &length)
                }
            }
        }
        return Array(out.prefix(Int(length)))
    }

    /// SHA256(), the one-shot EVP digest.
    package static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { d in _ = SHA256(d.baseAddress, d.count, o.baseAddress) }
        }
        return out
    }
}
