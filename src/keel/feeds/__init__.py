"""Where a session's bars come from: one small contract (`base.Feed`), a paced replay of files, and the polling feed a
venue plugs into. Feeds only say *when* a bar arrives; what is decided at it is the runtime's."""
