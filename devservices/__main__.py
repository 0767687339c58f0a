from .servers import main

raise SystemExit(main())
