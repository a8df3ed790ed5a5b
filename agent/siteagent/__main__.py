from siteagent.entry import main

main()
