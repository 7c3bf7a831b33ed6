module github.com/rpmfleet/rpmfleet

go 1.26.0

require (
	github.com/klauspost/compress v1.20.4
	github.com/ulikunitz/xz v0.5.17
)
