#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Whether a store can serve now, for /readyz: a directory must take a new file and give
/// it back (a probe created and removed, so a read-only mount or a full disk shows, also
/// for root, whom permission bits do not stop); Redis must answer PING as the master.
/// Returns nil when ready, else the reason.
public func storeProblem(_ store: any KVStore) -> String? {
    let bare = (store as? MeteredStore)?.inner ?? store
    if let redis = bare as? RedisStore {
        do { try redis.checkMaster() } catch { return error.description }
        return nil
    }
    if let directory = bare as? DirectoryStore {
        return directoryProblem(directory.root)
    }
    return nil
}

/// nil when `directory` is readable and a file can be created in it and removed.
public func directoryProblem(_ directory: String) -> String? {
    guard let dir = opendir(directory) else { return "\(directory): \(String(cString: strerror(errno)))" }
    closedir(dir)
    let probe = directory + "/.ready-\(getpid())-\(Int.random(in: 0..<1_000_000_000))"
    let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return "\(directory): cannot create a file: \(String(cString: strerror(errno)))" }
    close(fd)
    unlink(probe)
    return nil
}
