#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Crypto
import Net
import JWT
import SharedMemory

/// Where the signing keys come from.
enum KeySource: Equatable, CustomStringConvertible {
    /// A JWK Set or X.509 map on disk (--jwks-file, --dev-keys); read, never fetched.
    case file(String)
    /// A JWK Set or X.509 map URL (--jwks-url, --firebase-project).
    case url(FetchURL)
    /// An OpenID configuration whose `jwks_uri` names the key set (--discovery-url).
    case discovery(FetchURL)

    var description: String {
        switch self {
        case .file(let path): return path
        case .url(let url): return url.description
        case .discovery(let url): return "\(url) (discovery)"
        }
    }
}

struct KeyStoreSettings: Equatable {
    /// Where fetched key sets are cached, shared by every verify-jwt process.
    var cacheDirectory = ""
    /// Seconds between two fetches, across all processes (the unknown-kid flood guard).
    var cooldown = 30
    /// Milliseconds for a whole fetch (connect, TLS, response).
    var timeoutMillis = 2000
    /// Freshness when the response has no Cache-Control max-age.
    var defaultMaxAge = 6 * 3600
    /// How long past its max-age a cached set may still be used while fetches fail.
    var staleGrace = 6 * 3600
    /// Ceiling on any max-age, so a typo at the provider cannot pin keys for a year.
    var maxMaxAge = 7 * 86400
    /// Issuers a discovery document may declare (it must declare one of them).
    var issuers: [String] = []
}

/// The signing keys, shared on disk by every verify-jwt process (each connection starts
/// one): a cache file replaced atomically, refreshed when its max-age has passed or when a
/// token names a kid it lacks. Fetches are serialised by a lock file and spaced by a
/// cooldown recorded in it, so concurrent processes fetch once and a flood of made-up kids
/// costs the key endpoint at most one request per cooldown. When fetches fail, cached keys
/// keep serving for a grace period; with no usable keys at all, lookups throw
/// `.keysUnavailable` (a 503, since the client did nothing wrong).
final class KeyStore {
    typealias Fetcher = (FetchURL, Int) throws(NetError) -> HTTPResponse
    typealias WallClock = () -> Int

    let source: KeySource
    let settings: KeyStoreSettings
    private let fetcher: Fetcher
    private let clock: WallClock
    private let metrics: Metrics?

    private var keys: KeySet?
    private var expiresAt = 0
    private var loadedVersion: KeyFiles.Version?
    private var loadedOnce = false
    private var lastLocalAttempt: Int?
    private var warnedStale = false
    private var warnedFailure = false
    /// How many fetches this process made (for tests and logs).
    private(set) var fetchCount = 0

    /// The cache file's path prefix: the source URL's hash, so two configurations sharing a
    /// directory never read each other's keys.
    let cacheBase: String

    init(source: KeySource, settings: KeyStoreSettings,
         fetcher: @escaping Fetcher = { url, timeout throws(NetError) in try HTTPClient.get(url, timeoutMillis: timeout, userAgent: "edgepipe-verify-jwt") },
         clock: @escaping WallClock = { time(nil) }, metrics: Metrics? = Metrics.shared) {
        self.source = source
        self.metrics = metrics
        self.settings = settings
        self.fetcher = fetcher
        self.clock = clock
        // FNV-1a, not SHA-256: a name, not a secret, and no OpenSSL initialisation at start-up.
        var hash: UInt64 = 0xcbf29ce484222325
        for b in source.description.utf8 { hash = (hash ^ UInt64(b)) &* 0x100000001b3 }
        let id = String(hash, radix: 16)
        cacheBase = settings.cacheDirectory + "/keys-" + String(repeating: "0", count: 16 - id.count) + id
    }

    var cachePath: String { cacheBase + ".json" }
    var lockPath: String { cacheBase + ".lock" }

    /// The verifier for `kid`, nil when no usable key set has it.
    func verifier(kid: String, algorithm: SignatureAlgorithm) throws(JWTError) -> SignatureVerifier? {
        if case .file(let path) = source {
            if !loadedOnce {
                loadedOnce = true
                loadFile(path)
            }
            guard let keys else { throw .keysUnavailable }
            return try keys.verifier(kid: kid, algorithm: algorithm)
        }
        if !loadedOnce {
            loadedOnce = true
            loadCache()
        }
        // The common case: a fresh set that has the key (one comparison when it is the last one used).
        let now = clock()
        if let keys, now < expiresAt, let verifier = try keys.verifier(kid: kid, algorithm: algorithm) {
            return verifier
        }
        var refreshed = false
        if keys == nil || clock() >= expiresAt {
            refresh(wanting: kid)
            refreshed = true
        }
        if keys?.contains(kid) != true && !refreshed {
            refresh(wanting: kid)
        }
        guard let keys, clock() < expiresAt + settings.staleGrace else { throw .keysUnavailable }
        if clock() >= expiresAt && !warnedStale {
            warnedStale = true
            Log.error("serving cached keys for \(source) \(clock() - expiresAt) s past their max-age: the key endpoint cannot be reached")
        }
        return try keys.verifier(kid: kid, algorithm: algorithm)
    }

    /// Whether the keys in memory answer for `kid` and are fresh.
    private func satisfied(_ kid: String) -> Bool {
        guard let keys else { return false }
        return keys.contains(kid) && clock() < expiresAt
    }

    private func refresh(wanting kid: String) {
        let now = clock()
        // Within this process's own cooldown only another process can have news: a stat.
        if let last = lastLocalAttempt, now - last < settings.cooldown {
            reloadIfChanged()
            return
        }
        lastLocalAttempt = now
        do {
            try KeyFiles.ensurePrivateDirectory(settings.cacheDirectory)
        } catch {
            warnOnce("key cache unusable: \(error)")
            return
        }
        // Bounded: the holder's fetch is bounded by the same timeout.
        guard let lock = FileLock(path: lockPath, timeoutMillis: settings.timeoutMillis + 1000) else {
            reloadIfChanged()
            return
        }
        // Held until the new cache file is in place (ARC could otherwise end it at its last use).
        defer { withExtendedLifetime(lock) {} }
        reloadIfChanged()
        if satisfied(kid) { return }
        if let last = Int(lock.readNote()), now - last < settings.cooldown, now >= last { return }
        lock.writeNote(String(now))
        fetchCount += 1
        do {
            let (document, maxAge) = try fetchKeySet()
            let set = try KeySet(json: document)
            let expires = now + maxAge
            let cache = JSONObject([("source", .string(source.description)), ("fetched_at", JSON(now)),
                                    ("expires_at", JSON(expires)), ("keys", document)])
            try KeyFiles.writeAtomically(cachePath, cache.serialized(), mode: 0o644)
            keys = set
            expiresAt = expires
            loadedVersion = KeyFiles.version(cachePath)
            count("ok")
            published(fetchedAt: now, expiresAt: expires)
        } catch let error as NetError {
            count(error.description.hasPrefix("HTTP ") ? "http_error" : error.description.contains("not JSON") ? "unusable" : "network_error")
            warnOnce("key fetch from \(source) failed: \(error)")
        } catch {
            count("unusable")
            warnOnce("key fetch from \(source) failed: \(error)")
        }
    }

    /// edgepipe_jwks_fetches_total{outcome}.
    private func count(_ outcome: String) {
        guard let m = metrics else { return }
        m.add(m.layout.keyFetches, MetricsLayout.fetchOutcomes.firstIndex(of: outcome) ?? MetricsLayout.fetchOutcomes.count - 1)
    }

    /// The key set in use, for edgepipe_jwks_age_seconds and its expiry gauge.
    private func published(fetchedAt: Int, expiresAt: Int) {
        guard let m = metrics else { return }
        m.set(m.layout.keyFetchedAt, Int64(fetchedAt))
        m.set(m.layout.keyExpiresAt, Int64(expiresAt))
    }

    /// For /readyz: nil when a token could be checked now, else why not. With nothing
    /// usable in hand it tries to get keys the way a token would (cache, then a fetch within
    /// the cooldown), so a gateway taken out of rotation comes back once the endpoint does.
    func problem() -> String? {
        if case .file(let path) = source {
            if !loadedOnce {
                loadedOnce = true
                loadFile(path)
            }
            return keys == nil ? "cannot load the key set \(path)" : nil
        }
        if !loadedOnce {
            loadedOnce = true
            loadCache()
        }
        if keys == nil || clock() >= expiresAt { refresh(wanting: "") }
        guard keys != nil else { return "no usable key set from \(source): the key endpoint cannot be reached and nothing is cached" }
        let late = clock() - expiresAt
        if late >= settings.staleGrace { return "the cached key set from \(source) is \(late) s past its max-age, beyond the grace period" }
        return nil
    }

    private func warnOnce(_ message: String) {
        if warnedFailure { return }
        warnedFailure = true
        Log.error(message)
    }

    /// The key set document and its freshness in seconds.
    private func fetchKeySet() throws -> (JSON, Int) {
        switch source {
        case .url(let url):
            return try get(url)
        case .discovery(let url):
            let (config, _) = try get(url)
            guard case .string(let uri)? = config["jwks_uri"], let jwksURL = FetchURL.parse(uri),
                  jwksURL.isTLS || jwksURL.isLoopback else {
                throw NetError("discovery document without a usable https jwks_uri")
            }
            // OpenID Connect Discovery §4.3: the document must name the issuer we expect.
            guard case .string(let issuer)? = config["issuer"], settings.issuers.contains(issuer) else {
                throw NetError("discovery document names another issuer")
            }
            return try get(jwksURL)
        case .file:
            throw NetError("files are not fetched")
        }
    }

    private func get(_ url: FetchURL) throws -> (JSON, Int) {
        let response = try fetcher(url, settings.timeoutMillis)
        guard response.status == 200 else { throw NetError("HTTP \(response.status) from \(url)") }
        guard let json = try? JSONReader.parse(response.body) else { throw NetError("response from \(url) is not JSON") }
        let maxAge = Self.maxAge(cacheControl: response.header("cache-control"), age: response.header("age"))
            ?? settings.defaultMaxAge
        return (json, min(max(maxAge, 0), settings.maxMaxAge))
    }

    /// `max-age` minus `Age` (what a CDN already used up); no-cache and no-store mean 0.
    static func maxAge(cacheControl: String?, age: String?) -> Int? {
        guard let cacheControl else { return nil }
        var result: Int?
        for directive in cacheControl.lowercased().split(separator: ",") {
            let d = directive.trimmingSpacesAndTabs()
            if d == "no-cache" || d == "no-store" { return 0 }
            if d.hasPrefix("max-age=") {
                var value = d.dropFirst(8)
                if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = value.dropFirst().dropLast() }
                if let n = Int(value), n >= 0 { result = n }
            }
        }
        if let r = result, let age, let a = Int(age.trimmingSpacesAndTabs()), a > 0 { return max(r - a, 0) }
        return result
    }

    private func loadFile(_ path: String) {
        guard let bytes = readFile(path, limit: 1 << 20) else {
            Log.error("cannot read the key set \(path)")
            return
        }
        do {
            keys = try KeySet(document: bytes)
        } catch {
            Log.error("unusable key set \(path): \(error)")
        }
    }

    private func loadCache() {
        let version = KeyFiles.version(cachePath)
        guard let version, let bytes = readFile(cachePath, limit: 2 << 20) else { return }
        loadedVersion = version
        guard case .object(let cache)? = try? JSONReader.parse(bytes),
              let expires = cache["expires_at"]?.int, let document = cache["keys"],
              let set = try? KeySet(json: document) else {
            Log.error("ignoring a corrupt key cache \(cachePath)")
            return
        }
        keys = set
        expiresAt = expires
        published(fetchedAt: cache["fetched_at"]?.int ?? 0, expiresAt: expires)
    }

    private func reloadIfChanged() {
        guard let version = KeyFiles.version(cachePath), version != loadedVersion else { return }
        loadCache()
    }
}

