struct Probe { static func answer() -> Int { 42 } }
