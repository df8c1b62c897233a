// Ferry compose demo: a script whose URLs Ferry rewrites on the mirror domain.
var site = {"home": "https:\/\/www.example.com\/", "api": "https://api.example.com/v1/"};
document.getElementById("where").textContent = "This copy links to " + site.home;
