// swift-tools-version:6.0
import PackageDescription

// One library per concern; dependencies only point down (docs/architecture.md):
//
//   Records         the record model, JSON, line I/O, options, logs, clock, base64
//   SharedMemory    atomic slots in a memory-mapped file, shared by all pipelines  -> Records
//   Crypto          OpenSSL behind small owning types: keys, signatures, digests   -> Records
//   Net             stream sockets (TCP, Unix), TLS, the HTTP/1.1 client           -> Records, Crypto
//   JWT             compact JWS, key sets, claims                                  -> Records, Crypto
//   KV              the store protocol: a directory, or Redis                      -> Records, Crypto, Net, SharedMemory
//   Subscriptions   what a user's subscription state is, and how events change it  -> Records, KV
//   RateLimit       rate-limit rules and their check (GCRA)                        -> Records, SharedMemory, KV
//   CORS            cross-origin settings per route, preflights, response headers  -> Records
//   RouteTool, VerifyJWTTool, ForwardTool, KVTool, HTTPDecodeTool, HTTPEncodeTool
//                   one filter's logic each, built into a `Stage` from its command line:
//                   its own tool runs it alone, `chain` runs several in one process
//
// Code that one tool alone needs lives in that tool's folder (the six filters above are
// needed by their tool and by chain). No library imports
// Foundation, so filters start in about a millisecond; release builds are linked
// statically (see README), since every TCP connection starts each filter once.
let package = Package(
    name: "edgepipe",
    targets: [
        // libssl-dev through pkg-config: RSA/ECDSA/EdDSA verification, HMAC, SHA-256, TLS.
        // Only Crypto and Net import it, and neither shows a C type to the modules above.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .target(name: "Records", path: "Sources/Common/Records"),
        .target(name: "SharedMemory", dependencies: ["Records"], path: "Sources/Common/SharedMemory"),
        .target(name: "Crypto", dependencies: ["Records", "COpenSSL"], path: "Sources/Common/Crypto"),
        .target(name: "Net", dependencies: ["Records", "Crypto", "COpenSSL"], path: "Sources/Common/Net"),
        .target(name: "JWT", dependencies: ["Records", "Crypto"], path: "Sources/Common/JWT"),
        .target(name: "KV", dependencies: ["Records", "Crypto", "Net", "SharedMemory"], path: "Sources/Common/KV"),
        // KV for KVKeyPart: SubscriptionState.key is the one place the reader and the writer build a user's key.
        .target(name: "Subscriptions", dependencies: ["Records", "KV"], path: "Sources/Common/Subscriptions"),
        .target(name: "RateLimit", dependencies: ["Records", "SharedMemory", "KV"], path: "Sources/Common/RateLimit"),
        .target(name: "CORS", dependencies: ["Records"], path: "Sources/Common/CORS"),
        // Each filter's logic, which its own tool and `chain` (several filters in one process) run.
        .target(name: "RouteTool", dependencies: ["Records", "CORS", "RateLimit"], path: "Sources/Common/RouteTool"),
        .target(name: "VerifyJWTTool", dependencies: ["Records", "Crypto", "Net", "JWT", "RateLimit", "KV", "SharedMemory"],
                path: "Sources/Common/VerifyJWTTool"),
        .target(name: "ForwardTool", dependencies: ["Records", "Net"], path: "Sources/Common/ForwardTool"),
        .target(name: "KVTool", dependencies: ["Records", "KV", "Subscriptions"], path: "Sources/Common/KVTool"),
        .target(name: "HTTPDecodeTool", dependencies: ["Records", "SharedMemory"], path: "Sources/Common/HTTPDecodeTool"),
        .target(name: "HTTPEncodeTool", dependencies: ["Records", "CORS", "SharedMemory"], path: "Sources/Common/HTTPEncodeTool"),

        .executableTarget(name: "http-decode", dependencies: ["Records", "HTTPDecodeTool"]),
        .executableTarget(name: "http-encode", dependencies: ["Records", "HTTPEncodeTool"]),
        .executableTarget(name: "route", dependencies: ["Records", "RouteTool"]),
        .executableTarget(name: "verify-jwt", dependencies: ["Records", "VerifyJWTTool"]),
        .executableTarget(name: "sign-jwt", dependencies: ["Records", "Crypto", "JWT"]),
        .executableTarget(name: "kv", dependencies: ["Records", "KVTool"]),
        .executableTarget(name: "audit", dependencies: ["Records", "Crypto", "SharedMemory"]),
        .executableTarget(name: "apply-webhook", dependencies: ["Records", "Crypto", "KV", "Subscriptions", "SharedMemory"]),
        .executableTarget(name: "reserve", dependencies: ["Records", "Crypto", "KV"]),
        .executableTarget(name: "limit", dependencies: ["Records", "RateLimit"]),
        .executableTarget(name: "forward", dependencies: ["Records", "ForwardTool"]),
        .executableTarget(name: "chain", dependencies: ["Records", "RouteTool", "VerifyJWTTool", "ForwardTool", "KVTool",
                                                        "HTTPDecodeTool", "HTTPEncodeTool"]),

        .testTarget(name: "CommonTests", dependencies: ["Records", "Crypto", "CORS"]),
        .testTarget(name: "SharedMemoryTests", dependencies: ["SharedMemory"]),
        .testTarget(name: "LimitTests", dependencies: ["RateLimit", "Records", "SharedMemory", "KV"]),
        .testTarget(name: "RouteTests", dependencies: ["RouteTool", "Records"]),
        .testTarget(name: "JWTTests", dependencies: ["VerifyJWTTool", "sign-jwt", "Records", "Crypto", "Net", "JWT"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTPDecodeTool", "HTTPEncodeTool", "Records", "SharedMemory"]),
        .testTarget(name: "KVTests", dependencies: ["KVTool", "Records", "Crypto", "KV", "Subscriptions"]),
        .testTarget(name: "AuditTests", dependencies: ["audit", "Records", "Crypto"]),
        .testTarget(name: "WebhookTests", dependencies: ["apply-webhook", "Records", "Crypto", "KV", "Subscriptions"]),
        .testTarget(name: "ReserveTests", dependencies: ["reserve", "Records", "Crypto", "KV"]),
        .testTarget(name: "ForwardTests", dependencies: ["ForwardTool", "Records", "Net"]),
    ]
)

// Generic types the code names (an array of option specs, say) get their metadata through
// a direct accessor instead of a mangled name the runtime demangles on first use: every
// filter starts once per connection, and demangling was 4-40% of a start (BENCHMARKS §8).
// Per-record cost and binary size are the same either way.
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"]),
    ]
}
