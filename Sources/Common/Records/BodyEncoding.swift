// How a record carries a body: as text ("body") or as base64 ("body_base64").
//
// A record is one line of at most 16 MiB, and http-decode promises that every body it
// accepts fits in one. Base64 costs 4 bytes for 3, always. JSON escaping costs 1 byte for
// most bytes but 2 for '"' and '\' and 6 for a control byte ("\u0001"), so a body of
// control bytes as text would be six times its size. A large body whose escaping costs
// more than base64 therefore goes as base64; the worst case is then base64's 4/3.

public enum BodyEncoding {
    /// Bodies whose escaped text is at most this long stay text even when base64 would be
    /// shorter: a small JSON body such as `{"a":"b"}` stays readable in the record, and
    /// at this size the choice cannot matter to the 16 MiB limit.
    public static let textAlways = 64 << 10

    /// The length of the base64 form of `count` bytes (padded).
    public static func base64Length(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// The most bytes a body of `count` bytes takes in a record, quotes excluded.
    public static func worstCaseLength(_ count: Int) -> Int { max(textAlways, base64Length(count)) }

    /// Whether bytes that are valid UTF-8 still go as base64, because their escaped text
    /// would be longer than both `textAlways` and their base64.
    public static func prefersBase64(_ bytes: [UInt8]) -> Bool {
        let limit = max(textAlways, base64Length(bytes.count))
        if bytes.count <= limit / 6 { return false }   // six bytes a byte at worst: no scan needed
        return bytes.withUnsafeBufferPointer { JSON.escapedLength($0, stoppingAbove: limit) } > limit
    }
}

extension JSON {
    /// How many bytes `writeString` writes for these bytes, quotes excluded; counting
    /// stops once past `limit` (a value above `limit` is returned).
    static func escapedLength(_ bytes: UnsafeBufferPointer<UInt8>, stoppingAbove limit: Int) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let n = bytes.count
        var length = n
        var i = 0
        while length <= limit {
            i = nextEscape(base, from: i, count: n)
            if i == n { break }
            switch base[i] {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09: length &+= 1   // \" \\ \n \r \t
            default: length &+= 5                             // \u00XX
            }
            i &+= 1
        }
        return length
    }
}
