"""What the pipeline says about itself: each process publishes small status files (status), the status reader adds
what the lake's folders show (lag), judges health (health) and answers `make status` (cli); the page server shows
the same (lakehouse.page)."""
