module github.com/taskino/taskino

go 1.26.8

require (
	github.com/google/uuid v1.6.0
	github.com/mattn/go-isatty v0.0.20
	github.com/oklog/run v1.2.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/robfig/cron/v3 v3.0.1
	github.com/rs/zerolog v1.35.1
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
