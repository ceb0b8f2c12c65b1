from mhchat.cli import main

raise SystemExit(main())
