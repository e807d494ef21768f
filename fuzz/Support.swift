// Shared by every harness (compiled into each one).

/// A property every input must keep. A violation stops the process the way a crash does,
/// so libFuzzer keeps the input; the message names the property.
@inline(never)
func require(_ condition: Bool, _ message: @autoclosure () -> String,
             file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("property violated: \(message())", file: file, line: line) }
}

/// Deterministic choices derived from the input itself (where to cut a stream into reads),
/// so a saved crash replays exactly and the seeds stay plain files of the format.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        var h: UInt64 = 0xcbf29ce484222325   // FNV-1a
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        state = h
    }
    mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The input split at every `separator` (empty pieces kept).
func pieces(_ bytes: UnsafeBufferPointer<UInt8>, separator: UInt8) -> [UnsafeBufferPointer<UInt8>] {
    var out: [UnsafeBufferPointer<UInt8>] = []
    var start = 0
    for i in 0..<bytes.count where bytes[i] == separator {
        out.append(UnsafeBufferPointer(rebasing: bytes[start..<i]))
        start = i + 1
    }
    out.append(UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
    return out
}
