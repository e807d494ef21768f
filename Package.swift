// swift-tools-version:6.0
import PackageDescription

// Release builds are linked statically (see README): every TCP connection starts
// each filter once, so start-up time is paid per connection.
let package = Package(
    name: "edgepipe",
    targets: [
        // libssl-dev through pkg-config: RSA/ECDSA/EdDSA verification, HMAC, SHA-256, TLS.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        // The record model, JSON, line I/O, base64, crypto wrappers and the KV store:
        // everything two tools share. No Foundation, so filters start in about a millisecond.
        .target(name: "Common", dependencies: ["COpenSSL"], exclude: ["SharedMemory"]),
        // Atomic 64-bit slots in a memory-mapped file: counters and rate-limit state shared by
        // every pipeline of a machine, one atomic operation per update.
        .target(name: "SharedMemory", path: "Sources/Common/SharedMemory"),
        .executableTarget(name: "http-decode", dependencies: ["Common"]),
        .executableTarget(name: "http-encode", dependencies: ["Common"]),
        .executableTarget(name: "route", dependencies: ["Common"]),
        .executableTarget(name: "verify-jwt", dependencies: ["Common"]),
        .executableTarget(name: "sign-jwt", dependencies: ["Common"]),
        .executableTarget(name: "kv", dependencies: ["Common"]),
        .executableTarget(name: "audit", dependencies: ["Common"]),
        .executableTarget(name: "apply-webhook", dependencies: ["Common"]),
        .executableTarget(name: "reserve", dependencies: ["Common"]),
        .testTarget(name: "CommonTests", dependencies: ["Common"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory"]),
        .testTarget(name: "RouteTests", dependencies: ["route"]),
        .testTarget(name: "JWTTests", dependencies: ["verify-jwt", "sign-jwt", "Common"]),
        .testTarget(name: "HTTPTests", dependencies: ["http-decode", "http-encode", "Common"]),
        .testTarget(name: "KVTests", dependencies: ["kv", "Common"]),
        .testTarget(name: "AuditTests", dependencies: ["audit", "Common"]),
        .testTarget(name: "WebhookTests", dependencies: ["apply-webhook", "Common"]),
        .testTarget(name: "ReserveTests", dependencies: ["reserve", "Common"]),
    ]
)
