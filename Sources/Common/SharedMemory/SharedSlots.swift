#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import Records

/// A file of 64-bit slots mapped into every process that opens it, updated with atomic
/// instructions. Pipelines come and go, one per connection, and share counters and
/// rate-limit state through it with no lock and no file I/O per update: each update is one
/// atomic operation on memory that the kernel keeps coherent across processes.
///
/// The file is created (zero-filled) by the first opener and grown, never shrunk, by an
/// opener that asks for more slots; values survive until someone removes the file, which a
/// launcher does when the service starts (Prometheus reads a reset counter as a restart).
public final class SharedSlots: @unchecked Sendable {
    public let count: Int
    private let base: UnsafeMutableRawPointer
    private let slots: UnsafeMutablePointer<Atomic<Int64>>

    public struct OpenError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Opens or creates `path` with room for at least `count` slots.
    public init(path: String, count: Int) throws(OpenError) {
        precondition(count > 0)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw OpenError(description: "\(path): \(errnoText(errno))") }
        defer { close(fd) }
        let bytes = count * MemoryLayout<Int64>.stride
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw OpenError(description: "\(path): \(errnoText(errno))") }
        // Every byte the map can write gets its disk blocks now. A page of a sparse file gets
        // them when first written, and when the disk is full by then the kernel kills the
        // writer with SIGBUS: a full disk must cost the counters (one line, at open), never a
        // filter. Growing a file appends zeros and keeps what other processes wrote; two
        // openers racing to grow it both ask for a size at least as large as they need, so
        // neither shrinks it.
        if Int(st.st_size) < bytes || Int(st.st_blocks) * 512 < bytes {
            let failed = posix_fallocate(fd, 0, off_t(bytes))
            if failed != 0 { throw OpenError(description: "\(path): \(errnoText(failed))") }
        }
        guard let mapped = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
              mapped != MAP_FAILED else {
            throw OpenError(description: "\(path): mmap: \(errnoText(errno))")
        }
        self.count = count
        self.base = mapped
        self.slots = mapped.bindMemory(to: Atomic<Int64>.self, capacity: count)
    }

    deinit { munmap(base, count * MemoryLayout<Int64>.stride) }

    @inlinable
    public func load(_ index: Int) -> Int64 {
        precondition(index >= 0 && index < count)
        return slotPointer(index).pointee.load(ordering: .acquiring)
    }

    @inlinable
    public func store(_ index: Int, _ value: Int64) {
        precondition(index >= 0 && index < count)
        slotPointer(index).pointee.store(value, ordering: .releasing)
    }

    /// Adds `delta` and returns the new value.
    @inlinable @discardableResult
    public func add(_ index: Int, _ delta: Int64 = 1) -> Int64 {
        precondition(index >= 0 && index < count)
        return slotPointer(index).pointee.wrappingAdd(delta, ordering: .relaxed).newValue
    }

    /// Sets the slot to `desired` if it still holds `expected`; returns whether it did and
    /// the value it held.
    @inlinable
    public func compareExchange(_ index: Int, expected: Int64, desired: Int64) -> (exchanged: Bool, original: Int64) {
        precondition(index >= 0 && index < count)
        return slotPointer(index).pointee.compareExchange(expected: expected, desired: desired,
                                                          ordering: .acquiringAndReleasing)
    }

    @usableFromInline
    func slotPointer(_ index: Int) -> UnsafeMutablePointer<Atomic<Int64>> { slots + index }
}
