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
        .target(name: "Common", dependencies: ["COpenSSL"]),
        .executableTarget(name: "http-decode", dependencies: ["Common"]),
        .executableTarget(name: "http-encode", dependencies: ["Common"]),
        .executableTarget(name: "route", dependencies: ["Common"]),
        .testTarget(name: "CommonTests", dependencies: ["Common"]),
        .testTarget(name: "RouteTests", dependencies: ["route"]),
    ]
)
