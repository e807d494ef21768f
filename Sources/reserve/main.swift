import Records

let filter = ReserveFilter.configured(Usage.options.parse())
FilterLoop.run { filter.handle(&$0) }
