from siteagent.cli import main

main()
