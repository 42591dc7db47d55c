from activation.cli import main

raise SystemExit(main())
