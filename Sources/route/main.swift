import Common
FilterLoop.run { _ in }
