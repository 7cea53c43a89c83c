-- A transform for tests: every record of the stream `orders`, unchanged, to every sink.
return { on = { orders = function(r) return { r } end } }
