// Look-alike names. A label that mixes Latin with Cyrillic or Greek letters is how
// "pаypal" (a Cyrillic "а", xn--pypal-4ve) passes for "paypal": it slips past a
// blocklist rule and, on a page, reads as the name it imitates. Browsers refuse to display
// such labels as Unicode (Chromium's and Firefox's IDN display rules, after UTS #39's
// "highly restrictive" profile), so we refuse to hand them out.

enum Script: String {
    case latin = "Latin"
    case greek = "Greek"
    case cyrillic = "Cyrillic"

    /// The script of a letter, for the three scripts that share look-alike letters; nil
    /// for digits, the hyphen, combining marks and every other script.
    init?(_ scalar: Unicode.Scalar) {
        switch scalar.value {
        case 0x41...0x5A, 0x61...0x7A, 0xAA, 0xBA, 0xC0...0xD6, 0xD8...0xF6, 0xF8...0x24F, 0x250...0x2AF,
             0x1D00...0x1D25, 0x1D6B...0x1D77, 0x1D79...0x1DBE, 0x1E00...0x1EFF, 0x2C60...0x2C7F,
             0xA722...0xA7FF, 0xAB30...0xAB5A, 0xAB5C...0xAB64, 0xFF21...0xFF3A, 0xFF41...0xFF5A:
            self = .latin
        case 0x370...0x373, 0x375...0x377, 0x37A...0x37D, 0x37F, 0x384, 0x386, 0x388...0x3E1, 0x3F0...0x3FF,
             0x1D26...0x1D2A, 0x1F00...0x1FFF, 0xAB65:
            self = .greek
        case 0x3E2...0x3EF:
            return nil   // Coptic letters in the Greek block: a script of their own
        case 0x400...0x52F, 0x1C80...0x1C8F, 0x1D2B, 0x2DE0...0x2DFF, 0xA640...0xA69F:
            self = .cyrillic
        default:
            return nil
        }
    }

    /// The scripts among `scalars`, in order of first appearance, when there are two or
    /// more of them; nil when the label keeps to one.
    static func mixed(_ scalars: [Unicode.Scalar]) -> [Script]? {
        var seen: [Script] = []
        for s in scalars {
            if let script = Script(s), !seen.contains(script) { seen.append(script) }
        }
        return seen.count > 1 ? seen : nil
    }
}
